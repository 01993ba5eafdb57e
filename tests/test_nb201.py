import pytest

from archgen.errors import InvalidArchError
from archgen.graph import ArchGraph
from archgen.spaces import get_space
from archgen.spaces.nb201 import NUM_ARCHS
from conftest import BEST_C10
from test_graph import permuted

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_registry_and_aliases(nb201):
    assert get_space("NAS-Bench-201").name == "nb201"
    with pytest.raises(KeyError, match="unknown search space 'nb999'; valid: anb, fbnet, mbv3, nb201"):
        get_space("nb999")


def test_parse_format_round_trip(nb201):
    assert nb201.parse(BEST_C10) == BEST_C10
    assert nb201.parse("  " + BEST_C10 + "\n") == BEST_C10
    assert nb201.format(nb201.parse_ops(BEST_C10)) == BEST_C10


@pytest.mark.parametrize(
    "text, message",
    [
        ("|nor_conv_3x3~0|+|nor_conv_5x5~0|none~1|+|none~0|none~1|none~2|", "token 'nor_conv_5x5~0' .* unknown op 'nor_conv_5x5'"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "expected 3 node groups"),
        ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .* must list 2 incoming edge"),
        ("|nor_conv_3x3~0|+|none~0|none1|+|none~0|none~1|none~2|", "token 'none1' .* not of the form op~i"),
        ("|nor_conv_3x3~0|+|none~1|none~0|+|none~0|none~1|none~2|", "token 'none~1' .* must come from node 0"),
        ("nor_conv_3x3~0", "must start and end with '|'"),
    ],
)
def test_malformed_strings_name_the_token(nb201, text, message):
    with pytest.raises(InvalidArchError, match=message):
        nb201.parse(text)


def test_non_string_arch(nb201):
    with pytest.raises(InvalidArchError, match="must be a string"):
        nb201.parse(42)


def test_index_round_trip_and_bounds(nb201):
    for i in (0, 1, 4, 5, 777, NUM_ARCHS - 1):
        assert nb201.index_of(nb201.arch_at(i)) == i
    assert nb201.arch_at(0) == ALL_NONE
    with pytest.raises(InvalidArchError, match="0..15624"):
        nb201.arch_at(NUM_ARCHS)


def test_enumerate_is_complete_and_distinct(nb201):
    archs = list(nb201.enumerate())
    assert len(archs) == nb201.size == 15625
    assert len(set(archs)) == 15625


def test_graph_form_and_decoding(nb201):
    g = nb201.to_graph(BEST_C10)
    g.validate()
    assert g.num_nodes == 8 and g.ops[0] == "input" and g.ops[-1] == "output"
    assert g.nx.number_of_edges() == 10
    assert nb201.from_graph(g) == BEST_C10
    # any node numbering decodes to the same arch
    for seed in range(3):
        assert nb201.from_graph(permuted(g, seed)) == BEST_C10
    # and through torch_geometric
    assert nb201.from_graph(ArchGraph.from_pyg(g.to_pyg())) == BEST_C10


def test_from_graph_rejects_foreign_graphs(nb201):
    with pytest.raises(InvalidArchError, match="has 8 nodes"):
        nb201.from_graph(ArchGraph.from_lists(["input", "conv", "output"], [(0, 1), (1, 2)]))
    g = nb201.to_graph(BEST_C10)
    wrong_ops = ArchGraph.from_lists(["input"] + ["conv"] * 6 + ["output"], g.edges)
    with pytest.raises(InvalidArchError, match="outside NAS-Bench-201"):
        nb201.from_graph(wrong_ops)
    rewired = ArchGraph.from_lists(g.ops, [e for e in g.edges if e != (0, 4)] + [(1, 4)])
    with pytest.raises(InvalidArchError, match="wiring does not match"):
        nb201.from_graph(rewired)


def test_isomorphic_cells_are_all_distinct_graphs(nb201):
    # the template DAG has no automorphism, so hashes of distinct strings differ
    archs = nb201.sample(500, seed=1)
    assert len({nb201.to_graph(a).canonical_hash() for a in archs}) == 500


def test_sample_is_reproducible_distinct_and_valid(nb201):
    a, b = nb201.sample(50, seed=7), nb201.sample(50, seed=7)
    assert a == b and len(set(a)) == 50
    assert nb201.sample(50, seed=8) != a
    assert all(nb201.parse(x) == x for x in a)
    with pytest.raises(ValueError, match="n must be from 0 to 1,000,000"):
        nb201.sample(-1)


def test_mutate_changes_exactly_one_edge(nb201):
    for seed in range(20):
        child = nb201.mutate(BEST_C10, seed=seed)
        diff = sum(x != y for x, y in zip(nb201.parse_ops(child), nb201.parse_ops(BEST_C10)))
        assert diff == 1
    assert nb201.mutate(BEST_C10, seed=3) == nb201.mutate(BEST_C10, seed=3)


def test_equivalence_key_merges_cut_off_ops(nb201):
    # node 1 feeds only node 2, whose only other input is none; node 2 -> 3 is none:
    # whatever sits on edges 1<-0 and 2<-1 never reaches the output
    base = "|{a}~0|+|none~0|{b}~1|+|nor_conv_3x3~0|none~1|none~2|"
    keys = {nb201.equivalence_key(base.format(a=a, b=b)) for a in nb201.ops for b in nb201.ops}
    assert keys == {"nor_conv_3x3(x)"}
    assert nb201.equivalence_key(ALL_NONE) == "0"
    # skip connections are transparent: three spellings of conv1x1(x)
    spellings = [
        "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|",
        "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|",
        "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
    ]
    assert {nb201.equivalence_key(a) for a in spellings} == {"nor_conv_1x1(x)"}
    stacked = "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|"
    assert nb201.equivalence_key(stacked) == "nor_conv_1x1(nor_conv_1x1(x))"
    # sums commute: swapping which edge carries which op into node 3
    a = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|".replace("avg_pool_3x3~1", "none~1")
    assert nb201.equivalence_key(a) == "nor_conv_1x1(x)"


def test_equivalence_classes_are_fewer_than_strings(nb201):
    archs = nb201.sample(2000, seed=0)
    assert len({nb201.equivalence_key(a) for a in archs}) < 2000


@pytest.mark.parametrize("view", ["full", "pruned"])
def test_fast_graph_arrays_equal_the_generic_path(nb201, view):
    from archgen.spaces.base import SearchSpace

    archs = nb201.sample(300, seed=5) + [ALL_NONE, BEST_C10]
    for arch in archs:
        fast = nb201.graph_arrays(arch, view)
        slow = SearchSpace.graph_arrays(nb201, arch, view)
        for a, b in zip(fast, slow):
            assert a.shape == b.shape and (a == b).all(), arch
    with pytest.raises(ValueError, match="unknown graph view"):
        nb201.graph_arrays(BEST_C10, "sideways")
