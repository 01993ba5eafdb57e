"""Generators: decision layouts, training, sampling, guidance, persistence."""

import numpy as np
import pytest
import torch

from archgen.errors import InvalidArchError, UnknownNameError
from generators.guidance import guided_sample
from generators.layout import LayoutTensors
from generators.model import GeneratorConfig, pack_generator, unpack_generator
from generators.training import fit_generator

TINY = GeneratorConfig(hidden=16, layers=2, epochs=2, batch_size=512)


@pytest.fixture(scope="module")
def train_archs(nb201):
    return nb201.sample(3000, seed=5)


@pytest.fixture(scope="module", params=["diffusion", "autoregressive"])
def gen(request, nb201, train_archs):
    return fit_generator(nb201, train_archs, request.param, TINY, progress=False)


def test_choices_round_trip_and_errors(nb201):
    for arch in nb201.sample(50, seed=1):
        choices = nb201.encode_choices(arch)
        assert len(choices) == nb201.decisions.num_slots == 6
        assert nb201.decode_choices(choices) == arch
        assert nb201.decode_choices(np.array(choices)) == arch  # numpy ints take the checked path
    with pytest.raises(InvalidArchError, match="choice 5 of slot 2 is out of range 0..4"):
        nb201.decode_choices([0, 0, 5, 0, 0, 0])
    with pytest.raises(InvalidArchError, match="has 6 choices, got 3"):
        nb201.decode_choices([0, 0, 0])


def test_layout_tokens(nb201):
    layout = LayoutTensors(nb201.decisions)
    assert layout.num_nodes == 8 and layout.num_slots == 6
    choices = torch.tensor([[0, 1, 2, 3, 4, -1]])
    tokens = layout.node_tokens(choices)[0].tolist()
    names = [layout.vocab[t] for t in tokens]
    assert names == ["input", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "<mask>", "output"]


def test_samples_are_valid_and_reproducible(gen, nb201):
    a = gen.sample(200, seed=3)
    assert len(a) == 200
    for arch in a:
        assert nb201.parse(arch) == arch
        nb201.to_graph(arch).validate()
    assert gen.sample(200, seed=3) == a
    assert gen.sample(200, seed=4) != a


def test_unguided_samples_follow_the_training_distribution(gen, nb201):
    # trained on uniform random archs: every op about 1/5 of the slots, many distinct archs
    choices = gen.sample_choices(1000, seed=0)
    freq = np.bincount(choices.ravel(), minlength=5) / choices.size
    assert np.all(np.abs(freq - 0.2) < 0.06), freq
    assert len({tuple(r) for r in choices.tolist()}) > 850


def test_guidance_moves_samples_toward_the_reward(gen):
    def reward(choices):  # prefer nor_conv_3x3 (option 3)
        return 2.0 * (choices == 3).sum(axis=1)

    plain = (gen.sample_choices(500, seed=0) == 3).sum(axis=1).mean()
    guided = (gen.sample_choices(500, reward, proposals=8, seed=0) == 3).sum(axis=1).mean()
    assert guided > plain + 1.0, (plain, guided)


def test_guidance_steers_at_most_guided_steps(gen):
    calls = []

    def reward(choices):
        calls.append(len(choices))
        return np.zeros(len(choices))

    guided_sample(gen.sampler(), 20, reward, proposals=4, seed=0)
    assert len(calls) == 6  # every step of the 6-slot cell
    calls.clear()
    guided_sample(gen.sampler(), 20, reward, proposals=4, seed=0, guided_steps=2)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="guided_steps must be a positive int"):
        guided_sample(gen.sampler(), 5, reward, guided_steps=0)


def test_guided_sample_rejects_bad_counts(gen):
    with pytest.raises(ValueError, match="n must be a positive int"):
        gen.sample_choices(0)
    with pytest.raises(ValueError, match="proposals must be a positive int"):
        guided_sample(gen.sampler(), 5, lambda c: np.zeros(len(c)), proposals=0)


def test_novelty_against_training_set(gen, train_archs, nb201):
    assert not gen.is_novel(train_archs[:100]).any()
    unseen = [a for a in nb201.sample(500, seed=99) if a not in set(train_archs)][:50]
    assert gen.is_novel(unseen).all()


def test_pack_round_trip_is_exact(gen, nb201):
    payload = pack_generator(gen)
    back = unpack_generator(nb201, payload)
    assert back.sample(100, seed=7) == gen.sample(100, seed=7)


def test_unknown_generator_kind(nb201, train_archs):
    with pytest.raises(UnknownNameError, match="unknown generator 'gan'; valid: autoregressive, diffusion"):
        fit_generator(nb201, train_archs, "gan", TINY, progress=False)


def test_template_layers_compute_what_torch_geometric_does(nb201):
    """The generators' dense template GIN and MLP are torch_geometric's GINConv and
    MLP with the same parameters (so trained generators load either way)."""
    from torch_geometric.nn import GINConv
    from torch_geometric.nn.models import MLP as PygMLP

    from generators.layers import MLP, TemplateGINConv

    layout = LayoutTensors(nb201.decisions)
    torch.manual_seed(0)
    ours = TemplateGINConv(MLP([8, 8, 8]), layout.edge_index, layout.num_nodes)
    ref = GINConv(PygMLP([8, 8, 8], norm=None), train_eps=True)
    with torch.no_grad():
        ours.eps.fill_(0.3)
    assert set(ours.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    h = torch.randn(5, layout.num_nodes, 8)
    offsets = torch.arange(5).repeat_interleave(layout.edge_index.size(1)) * layout.num_nodes
    edges = layout.edge_index.repeat(1, 5) + offsets  # the 5 graphs as one disconnected graph
    expected = ref(h.reshape(-1, 8), edges).view(5, layout.num_nodes, 8)
    assert torch.allclose(ours(h), expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least an input and an output width"):
        MLP([8])
