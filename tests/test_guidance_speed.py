"""Fast guidance in large spaces: the choice encoder, predictors that score option
vectors (a choice encoder, or a GIN's feature student), label domains and the
slots they fix while sampling, and the compatibility of older bundles."""

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from archgen.errors import DomainError, UnknownNameError
from archgen.generation import LARGE_SPACE_SAMPLES, GuidanceSettings, predict_options
from archgen.ops import NODE_FEATURES, NUMERIC_ATTRS, OP_NAMES, legacy_feature_width
from archgen.spaces import get_space
from archgen.spaces.mbv3 import LAYER_OPTIONS, MAX_DEPTH, NUM_STAGES, RESOLUTION_OPTIONS
from conftest import require_table
from generators.guidance import guided_sample
from generators.layout import LayoutTensors
from generators.model import GENERATORS, Generator, GeneratorConfig, build_model
from graph_encoders import make_batcher
from graph_encoders.choices import ChoiceBatcher, ChoiceEncoder
from predictors.bundle import pack_predictor, unpack_predictor
from predictors.fit import STUDENT_ARCHS, FitConfig, fit_predictor, for_table
from predictors.model import EmbeddingPredictor
from predictors.predictor import MetricPredictor, label_domain

pytestmark = pytest.mark.usefixtures("one_thread")

DEVICE = "a100_per_image"  # measured on every Accel-NASBench architecture
QUICK = FitConfig(members=2, hidden=16, rank=4, epochs=2, batch_size=128, tune_prior=False)
R224 = RESOLUTION_OPTIONS.index("r224")
SKIP = len(LAYER_OPTIONS)


@pytest.fixture(scope="module")
def anb():
    return get_space("anb")


@pytest.fixture(scope="module")
def mbv3():
    return get_space("mbv3")


@pytest.fixture(scope="module")
def anb_rows():
    """400 Accel-NASBench architectures and their A100 latencies."""
    table = require_table("anb")
    rows = np.random.default_rng(0).choice(len(table), 400, replace=False)
    return [table.archs[i] for i in rows], table.latency(DEVICE)[rows]


def _fit(space, rows, config):
    archs, values = rows
    return fit_predictor(space, archs, {DEVICE: values}, kind="latency", unit="ms", normalisation="ratio",
                         config=config, progress=False)


@pytest.fixture(scope="module")
def choice_predictor(anb, anb_rows):
    return _fit(anb, anb_rows, replace(QUICK, encoder="choices"))


@pytest.fixture(scope="module")
def student_predictor(anb, anb_rows):
    """A GIN latency predictor with a feature student distilled from 500 random architectures."""
    return _fit(anb, anb_rows, replace(QUICK, encoder="gin", student_archs=500))


def _random_choices(space, n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, len(o), n) for o in space.decisions.options], axis=1)


def _mbv3_vectors(n, seed):
    """Random option vectors, a third of them with a layer right after a skipped slot."""
    mbv3 = get_space("mbv3")
    v = _random_choices(mbv3, n, seed)
    rng = np.random.default_rng(seed + 1)
    for i in range(0, n, 3):
        stage = rng.integers(NUM_STAGES)
        third = 1 + stage * MAX_DEPTH + 2  # the stage's 3rd slot: skip, then a layer in its 4th
        v[i, third], v[i, third + 1] = SKIP, rng.integers(SKIP)
    return v


# -- the choice encoder ---------------------------------------------------------------------
def test_choice_encoder_output_and_batches(anb, mbv3):
    archs = anb.sample(50, seed=3)
    batcher = ChoiceBatcher(anb)
    batch = batcher.batch(archs)
    assert batch.num_graphs == 50 and batch.choices.dtype == torch.long
    assert batch.choices.shape == (50, anb.decisions.num_slots)
    vectors = np.array([anb.encode_choices(a) for a in archs])
    assert torch.equal(batcher.from_choices(vectors).choices, batch.choices)
    assert type(make_batcher(anb, "full", "choices")) is ChoiceBatcher

    encoder = ChoiceEncoder([len(o) for o in anb.decisions.options], hidden=16, out_dim=5, embed=4)
    out = encoder(batch)
    assert out.shape == (50, 5) and torch.isfinite(out).all()
    assert torch.equal(encoder(batcher.from_choices(vectors)), out)
    with pytest.raises(ValueError, match="at least one slot"):
        ChoiceEncoder([3, 0])

    # MobileNetV3: vectors that alias (a layer after a skip) batch as the arch they decode to
    raw = _mbv3_vectors(30, seed=4)
    decoded = [mbv3.decode_choices(v) for v in raw.tolist()]
    assert torch.equal(ChoiceBatcher(mbv3).from_choices(raw).choices, ChoiceBatcher(mbv3).batch(decoded).choices)


def test_mbv3_canonical_choices_is_encode_of_decode(mbv3):
    v = _mbv3_vectors(2000, seed=0)
    aliased = [i for i in range(len(v)) if any(
        v[i, 1 + s * MAX_DEPTH + 2] == SKIP and v[i, 1 + s * MAX_DEPTH + 3] != SKIP for s in range(NUM_STAGES))]
    assert len(aliased) > 600  # the case canonicalisation exists for is well represented
    expected = np.array([mbv3.encode_choices(mbv3.decode_choices(row)) for row in v.tolist()])
    canonical = mbv3.canonical_choices(v)
    np.testing.assert_array_equal(canonical, expected)
    assert (canonical[aliased] != v[aliased]).any(axis=1).all()
    np.testing.assert_array_equal(v, _mbv3_vectors(2000, seed=0))  # the input is left alone
    np.testing.assert_array_equal(mbv3.canonical_choices(canonical), canonical)  # idempotent


# -- predictors over option vectors --------------------------------------------------------------
def test_choice_encoder_predictor_scores_vectors_as_archs(anb, choice_predictor):
    p = choice_predictor
    assert p.model.reads_choices and p.reads_choices and p.student is None
    vectors = _random_choices(anb, 200, seed=1)
    archs = [anb.decode_choices(v) for v in vectors.tolist()]
    by_vector, by_arch = p.predict_choices(vectors, DEVICE), p.predict(archs, DEVICE)
    assert by_vector.mean.shape == (200,) and np.isfinite(by_vector.mean).all()
    np.testing.assert_allclose(by_vector.mean, by_arch.mean, rtol=1e-9)
    np.testing.assert_allclose(by_vector.std, by_arch.std, rtol=1e-9)
    # generation routes these predictors to the vector path
    np.testing.assert_allclose(predict_options(p, anb, vectors, DEVICE).mean, by_arch.mean, rtol=1e-9)
    assert len(p.predict_choices(vectors[:0], DEVICE)) == 0
    with pytest.raises(UnknownNameError):
        p.predict_choices(vectors, "no_such_device")


def test_gin_predictor_scores_vectors_through_its_student(anb, student_predictor):
    p = student_predictor
    assert not p.model.reads_choices and p.reads_choices
    assert isinstance(p.student.r2, float) and np.isfinite(p.student.r2)
    vectors = _random_choices(anb, 300, seed=2)
    fast = p.predict_choices(vectors, DEVICE)
    assert fast.mean.shape == fast.std.shape == (300,)
    assert np.isfinite(fast.mean).all() and np.isfinite(fast.std).all() and (fast.std > 0).all()
    # the vector path: canonicalised option vectors through the student, never the GNN
    batch = ChoiceBatcher(anb).from_choices(vectors)
    with torch.no_grad():
        phi = p.student.features(batch).double().numpy()
    assert phi.shape == (2, 300, p.model.config["rank"] + 1) and (phi[:, :, 0] == 1).all()

    # a calibrated target reads the student's features through its own embedding
    archs = [anb.decode_choices(v) for v in vectors.tolist()]
    cal_archs = anb.sample(10, seed=8)
    p.calibrate("new", cal_archs, 2.0 * p.predict(cal_archs, DEVICE).mean)
    try:
        new_fast, new_slow = p.predict_choices(vectors, "new"), p.predict(archs, "new")
        assert new_fast.mean.shape == new_slow.mean.shape == (300,)
        assert np.isfinite(new_fast.mean).all() and np.isfinite(new_fast.std).all()
        assert np.isfinite(new_slow.mean).all() and (new_fast.mean > 0).all()
    finally:
        p.forget("new")
    assert p.targets == [DEVICE]


# a teacher member whose features vary by 0.2% around a mean of 1.2 (this small latency GNN)
# is learned only because the student fits standardised features
def test_student_ranks_like_its_teacher(anb, student_predictor):
    p = student_predictor
    vectors = _random_choices(anb, 300, seed=2)
    archs = [anb.decode_choices(v) for v in vectors.tolist()]
    fast, slow = p.predict_choices(vectors, DEVICE), p.predict(archs, DEVICE)
    assert spearmanr(fast.mean, slow.mean)[0] > 0.8
    assert p.student.r2 > 0.5
    cal_archs = anb.sample(10, seed=8)
    p.calibrate("new", cal_archs, 2.0 * p.predict(cal_archs, DEVICE).mean)
    try:
        assert spearmanr(p.predict_choices(vectors, "new").mean, p.predict(archs, "new").mean)[0] > 0.8
    finally:
        p.forget("new")


def test_student_survives_the_bundle_round_trip(anb, student_predictor):
    p = student_predictor
    buffer = io.BytesIO()
    torch.save(pack_predictor(p), buffer)
    buffer.seek(0)
    back = unpack_predictor(anb, torch.load(buffer, weights_only=True))
    assert back.reads_choices and back.student.r2 == p.student.r2
    vectors = _random_choices(anb, 100, seed=5)
    before, after = p.predict_choices(vectors, DEVICE), back.predict_choices(vectors, DEVICE)
    np.testing.assert_array_equal(after.mean, before.mean)
    np.testing.assert_array_equal(after.std, before.std)


def test_graph_predictor_without_student_reads_archs(anb, student_predictor):
    p = replace(student_predictor, student=None)
    assert not p.reads_choices
    vectors = _random_choices(anb, 20, seed=6)
    with pytest.raises(ValueError, match="no feature student"):
        p.predict_choices(vectors, DEVICE)
    archs = [anb.decode_choices(v) for v in vectors.tolist()]
    np.testing.assert_array_equal(predict_options(p, anb, vectors, DEVICE).mean, p.predict(archs, DEVICE).mean)


def test_for_table_gives_large_spaces_graph_predictors_a_student(anb, nb201):
    # anb: the graph accuracy predictor gets a student; its latency predictor reads decisions itself
    accuracy = for_table(FitConfig(), 4626, "accuracy", space=anb)
    assert accuracy.encoder == "gin" and accuracy.student_archs == STUDENT_ARCHS
    latency = for_table(FitConfig(), 4626, "latency", space=anb)
    assert latency.encoder == "choices" and latency.student_archs == 0
    assert for_table(FitConfig(), 15625, "accuracy", space=nb201).student_archs == 0
    assert for_table(FitConfig(student_archs=7), 4626, "accuracy", space=anb).student_archs == 7
    assert for_table(FitConfig(), 4626).student_archs == 0


# -- label domains ---------------------------------------------------------------------------------
def _at(mbv3, arch, resolution):
    return mbv3.format((resolution, mbv3.parse_arch(arch).stages))


def test_label_domain_finds_the_shared_resolution(mbv3):
    archs = mbv3.sample(300, seed=0)
    labelled = np.arange(300) % 3 == 0
    archs = [_at(mbv3, a, 224) if keep else a for a, keep in zip(archs, labelled)]
    values = np.where(labelled, 75.0, np.nan)
    assert {mbv3.parse_arch(a).resolution for a, keep in zip(archs, labelled) if not keep} != {224}
    assert label_domain(mbv3, archs, values) == {0: R224}
    # labels everywhere: every slot varies, no domain
    assert label_domain(mbv3, archs, np.full(300, 75.0)) == {}
    assert label_domain(mbv3, archs, np.full(300, np.nan)) == {}


def _mbv3_accuracy(mbv3, domains):
    model = EmbeddingPredictor(["t", "everywhere"], encoder="choices", members=1, rank=2, hidden=8,
                               options=[len(o) for o in mbv3.decisions.options])
    return MetricPredictor(space=mbv3, model=model, kind="accuracy", unit="%", normalisation="standard",
                           view="full", norms={"t": (70.0, 5.0, 0.1), "everywhere": (70.0, 5.0, 0.1)},
                           domains=domains)


def test_predicting_outside_a_domain_is_an_error(mbv3):
    p = _mbv3_accuracy(mbv3, {"t": {0: R224}})
    assert p.domain("t") == {0: R224} and p.domain("everywhere") == {}
    inside = _at(mbv3, mbv3.sample(1, seed=1)[0], 224)
    outside = _at(mbv3, inside, 160)
    assert np.isfinite(p.predict([inside], "t").mean).all()
    assert np.isfinite(p.predict([inside, outside], "everywhere").mean).all()
    with pytest.raises(DomainError, match=r"'r224'.*'r160'") as info:
        p.predict([inside, outside], "t")
    assert isinstance(info.value, ValueError) and "'everywhere'" in str(info.value)


def test_predict_choices_skips_the_domain_check_since_generation_fixes_the_slot(mbv3):
    # guidance scores proposals whose domain slots guided_sample has already fixed
    # (generate passes the task's domain as `fixed`), so the hot path does not re-check them
    p = _mbv3_accuracy(mbv3, {"t": {0: R224}})
    vectors = _random_choices(mbv3, 20, seed=2)
    vectors[:, 0] = RESOLUTION_OPTIONS.index("r160")
    assert np.isfinite(p.predict_choices(vectors, "t").mean).all()


# -- fixed slots while sampling -------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_guided_sample_keeps_fixed_slots(mbv3, kind):
    torch.manual_seed(0)
    config = GeneratorConfig(hidden=16, layers=2)
    gen = Generator(mbv3, kind, build_model(kind, LayoutTensors(mbv3.decisions), config).eval(), config,
                    np.zeros(0, dtype=np.int64))
    fixed = {0: R224, 3: SKIP}  # resolution 224, stage 1 at depth 2
    seen = []

    def reward(choices):
        seen.append(choices.copy())
        return -choices[:, 1:].sum(axis=1).astype(np.float64)

    guided = gen.sample_choices(40, reward, proposals=4, seed=1, fixed=fixed)
    plain = gen.sample_choices(40, None, seed=1, fixed=fixed)
    for out in (guided, plain):
        assert out.shape == (40, mbv3.decisions.num_slots)
        assert (out[:, 0] == R224).all() and (out[:, 3] == SKIP).all()
        assert all(mbv3.parse_arch(mbv3.decode_choices(r)).resolution == 224 for r in out.tolist())
    assert seen and all((c[:, 0] == R224).all() and (c[:, 3] == SKIP).all() for c in seen)
    # without `fixed` the untrained model uses other resolutions
    assert (gen.sample_choices(40, None, seed=1)[:, 0] != R224).any()
    np.testing.assert_array_equal(gen.sample_choices(40, reward, proposals=4, seed=1, fixed=fixed), guided)
    np.testing.assert_array_equal(guided_sample(gen.sampler(), 40, None, seed=1, fixed=fixed), plain)


# -- compatibility and settings -------------------------------------------------------------------
def test_legacy_feature_width():
    assert NUMERIC_ATTRS[-1] == "se"
    assert legacy_feature_width(NUMERIC_ATTRS[:7]) == len(OP_NAMES) + 7
    assert legacy_feature_width(NUMERIC_ATTRS) == NODE_FEATURES
    assert legacy_feature_width(["kernel", "x"]) is None
    assert legacy_feature_width(["stride"]) is None


def test_legacy_gin_reads_the_leading_features(nb201):
    legacy = len(OP_NAMES) + 7
    model = EmbeddingPredictor(["d"], encoder="gin", members=2, rank=3, hidden=8, in_dim=legacy).eval()
    batch = make_batcher(nb201, "full", "gin").batch(nb201.sample(6, seed=0))
    assert batch.x.shape[1] == NODE_FEATURES > legacy
    with torch.no_grad():
        out = model.features(batch)
        assert out.shape == (2, 6, 4) and torch.isfinite(out).all()
        batch.x[:, legacy:] = 5.0  # attributes it was never trained on do not reach it
        assert torch.equal(model.features(batch), out)


def test_bundle_without_in_dim_loads_with_the_legacy_width(nb201):
    legacy = len(OP_NAMES) + 7
    model = EmbeddingPredictor(["d"], encoder="gin", members=1, rank=3, hidden=8, in_dim=legacy)
    p = MetricPredictor(space=nb201, model=model, kind="latency", unit="ms", normalisation="ratio", view="full",
                        norms={"d": (0.0, 2.0, 0.1)})
    archs = nb201.sample(5, seed=1)
    d = pack_predictor(p)
    del d["config"]["in_dim"]  # as saved before configs recorded it
    back = unpack_predictor(nb201, d, legacy_in_dim=legacy)
    assert back.model.config["in_dim"] == legacy
    np.testing.assert_allclose(back.predict(archs, "d").mean, p.predict(archs, "d").mean, rtol=1e-6)


def test_guidance_settings_for_large_spaces(anb, nb201, mbv3):
    for space in (anb, mbv3):
        assert GuidanceSettings.for_space(space, scores_choices=True).samples == LARGE_SPACE_SAMPLES
        assert GuidanceSettings.for_space(space).samples == 100
        assert GuidanceSettings.for_space(space, scores_choices=True).proposals == 8
    assert GuidanceSettings.for_space(nb201, scores_choices=True) == GuidanceSettings()
