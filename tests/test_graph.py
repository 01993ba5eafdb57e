import random

import pytest
import torch

from archgen.errors import InvalidGraphError
from archgen.graph import ArchGraph
from archgen.ops import NODE_FEATURES, OP_NAMES


def diamond(attrs=None):
    """input -> conv, pool -> add -> output"""
    return ArchGraph.from_lists(
        ["input", ("conv", attrs or {"kernel": 3, "channels_out": 16}), "max_pool", "add", "output"],
        [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)],
    )


def permuted(g: ArchGraph, seed: int) -> ArchGraph:
    perm = list(range(g.num_nodes))
    random.Random(seed).shuffle(perm)
    inverse = {new: old for old, new in enumerate(perm)}
    ops = [(g.op(inverse[n]), g.attrs(inverse[n])) for n in range(g.num_nodes)]
    return ArchGraph.from_lists(ops, [(perm[u], perm[v]) for u, v in g.edges])


def test_valid_graph_passes_and_chains():
    g = diamond()
    assert g.validate() is g
    assert g.topological_order()[0] == 0 and g.topological_order()[-1] == 4
    assert "conv(channels_out=16,kernel=3) <- 0" in g.summary()


@pytest.mark.parametrize("seed", range(5))
def test_canonical_hash_invariant_under_renumbering(seed):
    g = diamond()
    assert permuted(g, seed).canonical_hash() == g.canonical_hash()


def test_canonical_hash_separates_ops_attrs_and_wiring():
    g = diamond()
    other_attr = diamond({"kernel": 5, "channels_out": 16})
    other_wiring = ArchGraph.from_lists(
        ["input", ("conv", {"kernel": 3, "channels_out": 16}), "max_pool", "add", "output"],
        [(0, 1), (1, 2), (2, 3), (0, 3), (3, 4)],
    )
    hashes = {g.canonical_hash(), other_attr.canonical_hash(), other_wiring.canonical_hash()}
    assert len(hashes) == 3


def test_canonical_hash_on_symmetric_graph():
    # four identical parallel branches: many automorphisms, one canonical form
    ops = ["input"] + ["relu"] * 4 + ["concat", "output"]
    edges = [(0, k) for k in range(1, 5)] + [(k, 5) for k in range(1, 5)] + [(5, 6)]
    g = ArchGraph.from_lists(ops, edges)
    assert permuted(g, 3).canonical_hash() == g.canonical_hash()
    g2 = ArchGraph.from_lists(ops, [(1, 4) if e == (0, 4) else e for e in edges])  # one branch chained
    assert g2.canonical_hash() != g.canonical_hash()


def test_pyg_round_trip():
    g = diamond()
    data = g.to_pyg()
    assert data.x.shape == (5, NODE_FEATURES)
    assert data.edge_index.shape == (2, 5)
    assert data.op.tolist() == [OP_NAMES.index(o) for o in ["input", "conv", "max_pool", "add", "output"]]
    # directed: every edge goes forward in topological order
    assert bool((data.edge_index[0] < data.edge_index[1]).all())
    back = ArchGraph.from_pyg(data)
    assert back.canonical_hash() == g.canonical_hash()
    assert back.attrs(1) == {"kernel": 3.0, "channels_out": 16.0}


def test_from_pyg_rejects_wrong_feature_width():
    data = diamond().to_pyg()
    data.x = torch.zeros(5, 3)
    with pytest.raises(InvalidGraphError, match="node features must have shape"):
        ArchGraph.from_pyg(data)


def test_dict_round_trip_and_bad_dict():
    g = diamond()
    assert ArchGraph.from_dict(g.to_dict()).canonical_hash() == g.canonical_hash()
    with pytest.raises(InvalidGraphError, match="'nodes'"):
        ArchGraph.from_dict({"edges": []})


def test_pruned_drops_none_and_dead_nodes():
    # input -> a(none) -> b(conv) -> out ; input -> c(relu) -> out
    g = ArchGraph.from_lists(["input", "none", "conv", "relu", "output"], [(0, 1), (1, 2), (2, 4), (0, 3), (3, 4)])
    p = g.pruned()
    assert sorted(p.ops) == ["input", "output", "relu"]
    p.validate()


@pytest.mark.parametrize(
    "ops, edges, message",
    [
        (["input", "warp_drive", "output"], [(0, 1), (1, 2)], "unknown op 'warp_drive'"),
        (["input", "conv", "relu", "output"], [(0, 1), (1, 2), (2, 1), (2, 3)], "cycle"),
        (["conv", "output"], [(0, 1)], "no 'input' node"),
        (["input", "conv"], [(0, 1)], "exactly one 'output'"),
        (["input", "conv", "output", "output"], [(0, 1), (1, 2), (1, 3)], "exactly one 'output'"),
        (["input", "conv", "relu", "output"], [(0, 1), (1, 3)], r"do not reach the output: \[2\]|not reachable from any input: \[2\]"),
        (["input", "conv", "relu", "output"], [(0, 1), (1, 3), (2, 3)], r"not reachable from any input: \[2\]"),
        (["input", "conv", "relu", "output"], [(0, 1), (1, 2), (1, 3)], r"do not reach the output: \[2\]"),
        ([], [], "no nodes"),
    ],
)
def test_validate_names_the_problem(ops, edges, message):
    with pytest.raises(InvalidGraphError, match=message):
        ArchGraph.from_lists(ops, edges).validate()


def test_validate_rejects_bad_attributes():
    with pytest.raises(InvalidGraphError, match="unknown attribute 'colour'"):
        ArchGraph.from_lists(["input", ("conv", {"colour": 3}), "output"], [(0, 1), (1, 2)]).validate()
    with pytest.raises(InvalidGraphError, match="kernel=-1"):
        ArchGraph.from_lists(["input", ("conv", {"kernel": -1}), "output"], [(0, 1), (1, 2)]).validate()


def test_edge_to_missing_node():
    g = ArchGraph()
    g.add_node("input")
    with pytest.raises(InvalidGraphError, match="refers to node 5"):
        g.add_edge(0, 5)
