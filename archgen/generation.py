"""Generation requests: task + device + latency budget -> ranked, budget-safe candidates.

The flow (DESIGN.md): a generator samples option vectors guided by a reward
built from the predictors; samples decode to arch strings (valid by
construction), are scored with spreads, kept only where ``predicted latency +
margin * spread <= budget``, de-duplicated by what they compute (the space's
equivalence key, which merges isomorphic graphs and more) and ranked by
predicted accuracy.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import BudgetError, DataError, GenerationWarning, RequestError, UnknownNameError
from .graph import ArchGraph
from .validation import MAX_CANDIDATES, MAX_PROPOSALS, MAX_SAMPLES, check_count, check_seed

#: the baseline "generator": uniform random sampling of the space, then the same
#: predictor filter and ranking as the real generators
RANDOM = "random"


#: the guidance margin (in spreads) while measuring on the device during generation
#: (``measurements > 0``): samples aim at the budget itself, since measured
#: candidates are kept by their measurement; unmeasured ones keep ``margin``
PROBE_MARGIN = 0.0

#: spaces with more architectures than this count as large (see GuidanceSettings.for_space)
LARGE_SPACE = 1_000_000

#: while measuring on the device (``measurements > 0``) the answer is limited by
#: whether the samples hold the best architecture under the budget, no longer by
#: the predictor's safety: a request in a space that is not large then draws this
#: many times the samples, with :data:`MEASURING_PROPOSALS` proposals per step
#: (chosen on validation devices by ``python bench/generate.py --part loop``:
#: regret 0.72 at a plain request's 500 samples x 16 proposals, 0.68 at 2,000 x 8,
#: 0.71 at 2,000 x 16)
MEASURING_SAMPLE_FACTOR = 4
MEASURING_PROPOSALS = 8

#: samples per request in a large space whose predictors score option vectors
#: directly (:meth:`~predictors.predictor.MetricPredictor.predict_choices`)
LARGE_SPACE_SAMPLES = 1000

#: classifier outputs of the tasks whose class count is known; a candidate's network
#: (``to_module``, ``to_onnx``, ``archgen generate --out``) gets its task's by default.
#: Other tasks (the training-free ``proxy``, calibrated ones) get the space's default.
TASK_CLASSES = {
    "cifar10": 10,
    "cifar100": 100,
    "ImageNet16-120": 120,
    "imagenet": 1000,
    "imagenet_top5": 1000,
}

#: ``Candidate.measured_by``: measured on the device by the request's ``measure`` while
#: generating (:mod:`archgen.refinement`), or afterwards with onnxruntime on this machine
#: (:meth:`archgen.ArchGen.verify`, ``archgen generate --verify``)
MEASURED_WHILE_GENERATING = "while_generating"
MEASURED_HERE = "onnxruntime_here"


def space_classes(space) -> int:
    """The classifier width ``space.to_module`` builds when not told (NB201 10, FBNet 100,
    MobileNetV3 and Accel-NASBench 1000): the space's own setting, read off its signature
    so that it is stated once, where the network is built."""
    default = inspect.signature(space.to_module).parameters.get("num_classes")
    if default is None or not isinstance(default.default, int):
        return 10
    return default.default


def task_classes(space, task: str | None) -> int:
    """The classifier outputs of a network for ``task`` in ``space``: :data:`TASK_CLASSES`
    where the task is known, else the space's default (:func:`space_classes`)."""
    return TASK_CLASSES.get(task, space_classes(space)) if task is not None else space_classes(space)


@dataclass(frozen=True)
class GuidanceSettings:
    """How strongly and how widely a generation request searches.

    ``strength`` is the inverse temperature of the reward
    ``strength * (accuracy_z + log P(latency + margin * spread <= budget))``, where
    ``accuracy_z`` is predicted accuracy in units of the task's spread: guidance
    aims at ``p_model(x) * exp(reward(x))``;
    ``proposals`` candidates per sampling step are resampled by that reward;
    ``samples`` architectures are generated per request; ``margin`` is the
    budget's safety margin in predicted latency spreads (the final filter, and
    the feasibility term of the reward). The defaults were chosen by
    ``python bench/generate.py --part guidance``: the lowest regret that kept
    every top candidate within budget on validation devices held out of the
    bench's pretraining (never on the test devices it reports).
    """

    strength: float = 64.0
    proposals: int = 16
    samples: int = 500
    margin: float = 1.5

    @classmethod
    def for_space(cls, space, measuring: bool = False, scores_choices: bool = False) -> GuidanceSettings:
        """The defaults for ``space``: in a space too large to enumerate nearly every
        proposal is new to the predictors' feature cache. Where both predictors
        read option vectors (``scores_choices``: ``anb``, ``mbv3``) a proposal costs
        microseconds, and a request draws :data:`LARGE_SPACE_SAMPLES` samples with 8
        proposals per step; where a graph network must encode each (FBNet), 100.
        ``measuring``: the request measures candidates on the device (see
        :data:`MEASURING_SAMPLE_FACTOR`)."""
        if space.size is None or space.size > LARGE_SPACE:
            return cls(samples=LARGE_SPACE_SAMPLES if scores_choices else 100, proposals=8)
        if measuring:
            return cls(samples=cls.samples * MEASURING_SAMPLE_FACTOR, proposals=MEASURING_PROPOSALS)
        return cls()

    def checked(self) -> GuidanceSettings:
        """These settings, or an error naming the one out of range: ``strength`` and
        ``margin`` finite and >= 0; ``samples`` 1 to :data:`~archgen.validation.MAX_SAMPLES`
        and ``proposals`` 1 to :data:`~archgen.validation.MAX_PROPOSALS` (beyond those a
        request would allocate for minutes before failing)."""
        for name in ("strength", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise RequestError(f"{name} must be a finite number >= 0, got {value!r}")
        check_count("samples", self.samples, maximum=MAX_SAMPLES)
        check_count("proposals", self.proposals, maximum=MAX_PROPOSALS)
        return self


@dataclass
class Candidate:
    """One generated architecture with its predicted (and, where a benchmark
    table knows them, true) metrics. ``*_std`` are the predictors' spreads."""

    space: object = field(repr=False)
    arch: str
    predicted_accuracy: float
    accuracy_std: float
    predicted_latency_ms: float | None
    latency_std_ms: float | None
    true_accuracy: float | None = None
    true_latency_ms: float | None = None
    novel: bool | None = None  # absent from the generator's training set
    #: latency measured on a device: while generating (hardware in the loop) or afterwards
    #: (:meth:`archgen.ArchGen.verify`); ``measured_by`` says which (:data:`MEASURED_HERE`, ...)
    measured_latency_ms: float | None = None
    measured_by: str | None = None
    #: whether the measured latency exceeds the request's budget (None: not measured, or no budget)
    over_budget: bool | None = None
    #: classifier outputs of the request's task (:func:`task_classes`): what to_module builds by default
    num_classes: int | None = None

    @property
    def graph(self) -> ArchGraph:
        return self.space.to_graph(self.arch)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The network's input at batch 1 (MobileNetV3's resolution is part of the arch)."""
        return (1, *self.space.input_shape_of(self.arch))

    def _classes(self, num_classes: int | None) -> int:
        if num_classes is not None:
            return num_classes
        return self.num_classes if self.num_classes is not None else space_classes(self.space)

    def to_module(self, num_classes: int | None = None, **options):
        """A trainable ``torch.nn.Module`` of this architecture, with the task's
        ``num_classes`` outputs unless told otherwise (CIFAR-100: 100, ImageNet: 1000)."""
        return self.space.to_module(self.arch, num_classes=self._classes(num_classes), **options)

    def to_onnx(self, path, num_classes: int | None = None, batch_size: int = 1) -> Path:
        """Export the built network (the task's class count unless given) to ONNX at
        ``path``, with input ``batch_size x`` the space's input shape of this arch."""
        from .hardware import to_onnx

        return to_onnx(self.to_module(num_classes), path, (batch_size, *self.space.input_shape_of(self.arch)))

    def train(self, data="digits", **options):
        """Train this architecture with the Lightning Trainer and report its test
        accuracy (see :func:`archgen.training.train_candidate` for ``options``)."""
        from .training import train_candidate

        return train_candidate(self.space, self.arch, data, **options)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("space")
        return {"space": self.space.name, **d, "num_classes": self._classes(None), "input_shape": list(self.input_shape)}


@dataclass
class GenerationReport:
    """What a request asked, how it was sampled and how good the samples were.

    ``uniqueness``: distinct architectures among the samples; ``functional_uniqueness``:
    distinct equivalence classes (what they compute); ``novelty``: share of distinct
    samples absent from the generator's training set; ``feasible_share``: share of
    distinct samples predicted to meet the budget with the margin;
    ``budget_satisfaction``: share of returned candidates whose *true* latency
    meets the budget, and ``regret``: best true accuracy under the budget in the
    table minus the top candidate's true accuracy (both None when unknown);
    ``measurements``: device measurements taken while generating (see
    :mod:`archgen.refinement`).
    """

    request: dict
    settings: dict
    samples: int
    validity: float
    uniqueness: float
    functional_uniqueness: float
    novelty: float | None
    feasible_share: float
    returned: int
    seconds: float
    budget_satisfaction: float | None = None
    oracle_accuracy: float | None = None
    regret: float | None = None
    measurements: int = 0
    sample_archs: list[str] = field(default_factory=list, repr=False)
    sample_accuracy: np.ndarray | None = field(default=None, repr=False)
    sample_latency_ms: np.ndarray | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        """The scalar figures (for logs and JSON)."""
        keys = ("samples", "validity", "uniqueness", "functional_uniqueness", "novelty", "feasible_share",
                "returned", "seconds", "budget_satisfaction", "oracle_accuracy", "regret", "measurements")
        return {k: getattr(self, k) for k in keys}


class Candidates(list):
    """The ranked candidates (best first); ``.report`` says how they were found."""

    report: GenerationReport

    def record_measurements(self, latencies_ms, measured_by: str) -> Candidates:
        """Record each candidate's measured latency (in order) and whether it exceeds
        the request's budget (``over_budget``); returns ``self``."""
        latencies_ms = list(latencies_ms)
        if len(latencies_ms) != len(self):
            raise RequestError(f"got {len(latencies_ms)} measured latencies for {len(self)} candidates")
        budget = self.report.request.get("max_latency_ms")
        for c, ms in zip(self, latencies_ms):
            c.measured_latency_ms, c.measured_by = float(ms), measured_by
            c.over_budget = None if budget is None else bool(ms > budget)
        return self

    def over_budget(self) -> list[Candidate]:
        """The candidates measured over the request's budget."""
        return [c for c in self if c.over_budget]


def predict_options(predictor, space, choices: np.ndarray, target: str):
    """``predictor``'s prediction of ``target`` for ``[n, S]`` option vectors: straight
    from the vectors where it reads them, else through the decoded arch strings (a
    profiled device's fast head: summing kernels is for the final samples)."""
    if predictor.reads_choices:
        return predictor.predict_choices(choices, target)
    return predictor.predict([space.decode_choices(row) for row in choices.tolist()], target, exact=False)


def make_reward(space, accuracy, task: str, latency, device: str | None, budget: float | None,
                settings: GuidanceSettings):
    """The guidance reward over option vectors (see :class:`GuidanceSettings`)."""
    import torch

    unit = accuracy.scale(task)

    def reward(choices: np.ndarray) -> np.ndarray:
        r = predict_options(accuracy, space, choices, task).mean / unit
        if budget is not None:
            lat = predict_options(latency, space, choices, device)
            z = (budget - lat.mean) / np.maximum(lat.std, 1e-9) - settings.margin
            r = r + torch.special.log_ndtr(torch.from_numpy(z)).numpy()
        return settings.strength * r

    return reward


def true_columns(space, data, task: str, device: str | None):
    """``(table, accuracy column, latency column)`` from the benchmark table, where it has them."""
    from .data import LAYOUT, load_table

    if space.name not in LAYOUT:
        return None, None, None
    try:
        table = load_table(space.name, data)
    except DataError:
        return None, None, None
    acc = table.accuracies.get(task)
    lat = table.latencies.get(device) if device is not None else None
    return table, acc, lat


#: a profiled device sums the kernels of this many samples per requested candidate (at
#: least :data:`PROFILE_SHORTLIST_MIN`), the most accurate its fast head lets through
PROFILE_SHORTLIST_PER_CANDIDATE, PROFILE_SHORTLIST_MIN = 20, 100
#: how far over budget (with the margin) the fast head may put a shortlisted sample
PROFILE_SHORTLIST_SLACK = 1.25


def predict_latency(latency, archs: list[str], device: str | None, accuracy: np.ndarray, n: int,
                    budget: float | None, margin: float):
    """Latency predictions of the distinct samples on ``device`` (None without one).

    A profiled device's exact prediction sums each network's kernels (tens of ms per new
    architecture: minutes for thousands of samples), so its fast head screens the samples and
    only a shortlist -- the most accurate of those it puts within budget, with slack -- is
    summed; the others are NaN (never chosen). Any other device predicts every sample."""
    if device is None:
        return None
    if latency.head_of(device) != "profile":
        return latency.predict(archs, device)
    quick = latency.predict(archs, device, exact=False)
    order = np.argsort(-accuracy, kind="stable")
    if budget is not None:
        order = order[quick.upper(margin)[order] <= budget * PROFILE_SHORTLIST_SLACK]
    short = order[:max(PROFILE_SHORTLIST_PER_CANDIDATE * n, PROFILE_SHORTLIST_MIN)]
    mean, std = np.full(len(archs), np.nan), np.full(len(archs), np.nan)
    if len(short):
        exact = latency.predict([archs[i] for i in short], device)
        mean[short], std[short] = exact.mean, exact.std
    return type(quick)(quick.target, quick.unit, mean, std)


def resolve_task(bundle, task: str | None) -> str:
    """``task``, or the bundle's only task when none is given (the FBNet and
    MobileNetV3 bundles' ``proxy``); with several tasks one must be named."""
    if task is not None:
        return task
    tasks = bundle.accuracy.targets
    if len(tasks) != 1:
        raise RequestError(f"task=... is needed: the {bundle.space} bundle has {len(tasks)} tasks "
                           f"({', '.join(tasks)}); pass one of them")
    return tasks[0]


def _check_request(bundle, task, device, max_latency_ms, n, generator, settings, seed=0, measure=None,
                   measurements=0) -> float | None:
    """Validate a request; returns the budget as a float (or None). Limits: ``n`` up to
    :data:`~archgen.validation.MAX_CANDIDATES`, ``seed`` 0 to 2**63-1, the settings'
    (:meth:`GuidanceSettings.checked`)."""
    check_count("n", n, maximum=MAX_CANDIDATES)
    check_seed(seed)
    settings.checked()
    if settings.samples < n:
        raise RequestError(f"samples ({settings.samples}) must be at least n ({n})")
    if generator != RANDOM and generator not in bundle.generators:
        raise UnknownNameError("generator", generator, [*bundle.generators, RANDOM])
    if task not in bundle.accuracy.targets:
        raise UnknownNameError("task", task, bundle.accuracy.targets)
    if device is not None and device not in bundle.latency.targets:
        raise UnknownNameError("device", device, bundle.latency.targets)
    check_count("measurements", measurements, minimum=0, maximum=settings.samples)
    if measurements and (measure is None or max_latency_ms is None):
        raise RequestError("measurements needs a budget (max_latency_ms=...) and measure=, a function that "
                           "measures architectures on the device (arch strings -> ms)")
    if max_latency_ms is None:
        return None
    if device is None:
        raise RequestError("max_latency_ms needs a device to predict latency on; pass device=...")
    if isinstance(max_latency_ms, bool) or not isinstance(max_latency_ms, (int, float)) \
            or not math.isfinite(max_latency_ms) or max_latency_ms <= 0:
        raise RequestError(f"max_latency_ms must be a positive number of milliseconds, got {max_latency_ms!r}")
    return float(max_latency_ms)


def generate(
    bundle,
    *,
    task: str | None,
    device: str | None,
    max_latency_ms: float | None,
    n: int,
    generator: str,
    seed: int,
    settings: GuidanceSettings,
    data=None,
    measure=None,
    measurements: int = 0,
    progress: bool = True,
) -> Candidates:
    """Run one generation request on a bundle (see :meth:`archgen.ArchGen.generate`)."""
    start = time.perf_counter()
    space = bundle.latency.space
    task = resolve_task(bundle, task)
    max_latency_ms = _check_request(bundle, task, device, max_latency_ms, n, generator, settings, seed, measure,
                                    measurements)
    # a task learned on part of the space (OFA ImageNet: resolution 224) fixes those decisions
    fixed = bundle.accuracy.domain(task)
    if generator == RANDOM:
        choices = np.array([space.encode_choices(a) for a in space.sample(settings.samples, seed)])
        for slot, option in fixed.items():
            choices[:, slot] = option
        choices = space.canonical_choices(choices)
        novel = None
    else:
        gen = bundle.generators[generator]
        # measuring while generating: aim the samples at the budget itself, the loop checks them
        aim = replace(settings, margin=PROBE_MARGIN) if measurements else settings
        reward = make_reward(space, bundle.accuracy, task, bundle.latency, device, max_latency_ms, aim)
        choices = gen.sample_choices(settings.samples, reward, settings.proposals, seed, fixed=fixed,
                                     progress=progress)

    # decode (valid by construction; counted, not assumed) and score the distinct samples
    decoded = []
    for row in choices.tolist():
        try:
            decoded.append(space.decode_choices(row))
        except ValueError:
            pass
    archs = list(dict.fromkeys(decoded))
    acc = bundle.accuracy.predict(archs, task)
    lat = predict_latency(bundle.latency, archs, device, acc.mean, n, max_latency_ms, settings.margin)
    keys = [space.equivalence_key(a) for a in archs]
    measured, spent = {}, 0
    if measurements:
        from .refinement import refine

        ref = refine(bundle.latency, device, archs, acc.mean, keys, max_latency_ms, n, measure, measurements,
                     predict=lambda: predict_latency(bundle.latency, archs, device, acc.mean, n, max_latency_ms,
                                                     settings.margin))
        measured, spent, lat = ref.measured, ref.spent, ref.latency
    measured_ms = np.array([measured.get(a, np.nan) for a in archs])  # NaN: not measured
    if max_latency_ms is None:
        feasible = np.ones(len(archs), dtype=bool)
    else:  # a measured latency is a fact; the others are kept with the safety margin
        feasible = np.where(np.isnan(measured_ms), lat.upper(settings.margin) <= max_latency_ms,
                            measured_ms <= max_latency_ms)
    novel = None if generator == RANDOM else gen.is_novel(archs)
    if not feasible.any():
        i = int(np.nanargmin(lat.upper(settings.margin)))
        raise BudgetError(
            f"no architecture is predicted to run within {max_latency_ms} ms on {device!r}: the fastest of "
            f"{len(archs)} distinct samples, {archs[i]}, is predicted at {lat.mean[i]:.3f} ± {lat.std[i]:.3f} ms "
            f"({lat.upper(settings.margin)[i]:.3f} ms with the {settings.margin}-spread safety margin); "
            "raise max_latency_ms, lower margin=..., or let the request measure candidates on the device "
            "(measurements=N; device='local' measures this machine, any other device needs measure=...)"
        )

    # rank: accuracy first, then among equals a measured one, then the faster; one per equivalence class
    order = np.lexsort(((lat.mean if lat is not None else np.zeros(len(archs))), np.isnan(measured_ms), -acc.mean))
    chosen, seen = [], set()
    for i in order:
        if feasible[i] and keys[i] not in seen:
            seen.add(keys[i])
            chosen.append(int(i))
            if len(chosen) == n:
                break

    table, true_acc, true_lat = true_columns(space, data, task, device)
    classes = task_classes(space, task)
    cands = Candidates()
    def known(column, row):  # a table cell, None where the table lacks the arch or never measured it
        value = column[row] if row is not None and column is not None else np.nan
        return float(value) if np.isfinite(value) else None

    for i in chosen:
        row = table.row_of.get(archs[i]) if table is not None else None
        cands.append(Candidate(
            space, archs[i], float(acc.mean[i]), float(acc.std[i]),
            float(lat.mean[i]) if lat is not None else None, float(lat.std[i]) if lat is not None else None,
            known(true_acc, row), known(true_lat, row),
            None if novel is None else bool(novel[i]),
            measured.get(archs[i]),
            # a measured candidate is kept only within budget (see feasible above)
            MEASURED_WHILE_GENERATING if archs[i] in measured else None,
            False if archs[i] in measured else None,
            classes,
        ))
    if len(cands) < n:
        warnings.warn(
            f"found {len(cands)} of the {n} requested candidates: of {settings.samples} samples, {len(archs)} "
            f"were distinct, {int(feasible.sum())} met the {max_latency_ms} ms budget with the margin, and "
            f"they compute {len({keys[i] for i in np.flatnonzero(feasible)})} different functions; "
            "ask for more samples or a looser budget", GenerationWarning, stacklevel=3,
        )

    satisfaction = oracle = regret = None
    if max_latency_ms is not None and cands and all(c.true_latency_ms is not None for c in cands):
        satisfaction = float(np.mean([c.true_latency_ms <= max_latency_ms for c in cands]))
    if true_acc is not None and (max_latency_ms is None or true_lat is not None):
        # the table's best within budget, among the rows it measured on both (NaN: not measured)
        under = np.isfinite(true_acc) & (True if max_latency_ms is None else np.nan_to_num(true_lat, nan=np.inf)
                                         <= max_latency_ms)
        if under.any():
            oracle = float(true_acc[under].max())
            if cands and cands[0].true_accuracy is not None:
                regret = oracle - cands[0].true_accuracy

    cands.report = GenerationReport(
        request={"space": space.name, "task": task, "device": device, "max_latency_ms": max_latency_ms, "n": n,
                 "generator": generator, "seed": seed},
        settings=asdict(settings),
        samples=settings.samples,
        validity=len(decoded) / settings.samples,
        uniqueness=len(archs) / settings.samples,
        functional_uniqueness=len(set(keys)) / settings.samples,
        novelty=None if novel is None else float(novel.mean()),
        feasible_share=float(feasible.mean()),
        returned=len(cands),
        seconds=time.perf_counter() - start,
        budget_satisfaction=satisfaction, oracle_accuracy=oracle, regret=regret, measurements=spent,
        sample_archs=archs, sample_accuracy=acc.mean,
        sample_latency_ms=lat.mean if lat is not None else None,
    )
    return cands
