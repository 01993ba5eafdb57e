"""Spaces: bounded sample sizes, checked seeds, short fast errors for huge or garbage arch
strings, and no import cycles between a space and its network module."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import pytest

from archgen.errors import ArchGenError, InvalidArchError, RequestError
from archgen.spaces import available_spaces, get_space
from archgen.validation import MAX_SAMPLE

SPACES_DIR = Path(__file__).resolve().parents[1] / "archgen" / "spaces"
MB = 1_000_000
NB201_TAIL = "|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MBV3_BODY = "k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e3|k5e4-k5e4-k7e6-k3e3|k3e3-k3e6"
ANB_TAIL = "-e6_k3_l2_se" * 6

#: arch strings holding a number of hundreds (or a million) of digits, per space
HUGE_NUMBERS = {
    "nb201": ["|nor_conv_3x3~" + "9" * 400 + NB201_TAIL],
    "fbnet": ["-".join(["k3_e1"] * 21 + ["k" + "9" * 400 + "_e1"])],
    "mbv3": ["r" + "9" * 400 + ":" + MBV3_BODY, "r" + "9" * 5000 + ":" + MBV3_BODY,
             "r160:k" + "7" * 400 + "e3" + MBV3_BODY[4:], "r160:" + MBV3_BODY[:-1] + "3" * MB],
    "anb": ["e" + "9" * 400 + "_k3_l1" + ANB_TAIL, "e6_k3_l" + "1" * MB + ANB_TAIL],
    "transnas_micro": ["|nor_conv_3x3~" + "9" * 400 + NB201_TAIL, "64-41414-0_00_" + "3" * MB],
}
#: a megabyte of garbage, in several shapes, per space
GARBAGE = {
    "nb201": ["x" * MB, "|" + "a" * MB + "|", "|" + "q~0|" * (MB // 4) + "+||+||", "|" + "+" * MB + "|"],
    "fbnet": ["x" * MB, "-" * MB, "-".join(["k3_e1"] * 21 + ["q" * MB])],
    "mbv3": ["x" * MB, "r160:" + "|" * MB, "r160:" + "k3e4-" * (MB // 5) + "|" * 4, "r" + "1" * MB + ":"],
    "anb": ["x" * MB, "-".join(["e6_k3_l2_se"] * 6 + ["z" * MB]), "-" * MB],
    "transnas_micro": ["x" * MB, "|" + "a" * MB + "|", "|" + "q~0|" * (MB // 4) + "+||+||", "-" * MB,
                       "64-41414-" + "q" * MB],
}


def test_every_space_is_covered():
    assert set(HUGE_NUMBERS) == set(GARBAGE) == set(available_spaces())


def _refused(space: str, text: str) -> str:
    start = time.perf_counter()
    with pytest.raises(InvalidArchError) as info:
        get_space(space).parse(text)
    assert time.perf_counter() - start < 1.0
    return str(info.value)


@pytest.mark.parametrize("space, text", [(s, t) for s, texts in HUGE_NUMBERS.items() for t in texts],
                         ids=lambda v: v if len(v) < 12 else f"{len(v)}chars")
def test_huge_numbers_are_parse_errors(space, text):
    message = _refused(space, text)
    assert len(message) < 400, message
    assert "9" * 100 not in message and "1" * 100 not in message and "3" * 100 not in message


@pytest.mark.parametrize("space, text", [(s, t) for s, texts in GARBAGE.items() for t in texts],
                         ids=lambda v: v if len(v) < 12 else f"{len(v)}chars")
def test_megabyte_of_garbage_is_a_short_fast_error(space, text):
    message = _refused(space, text)
    assert len(message) < 600, message
    assert "characters" in message or "digits" in message or "depth" in message  # the cut is said


def test_huge_numbers_in_mbv3_records_are_refused_shortly():
    mbv3 = get_space("mbv3")
    record = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 10**400}
    with pytest.raises(InvalidArchError, match=r"record resolution r an int of [\d,]+ bits is out of range"):
        mbv3.from_record(record)
    with pytest.raises(InvalidArchError, match=r"has kernel an int of [\d,]+ bits; valid kernels: 3, 5, 7"):
        mbv3.from_record({**record, "r": 160, "ks": [10**400] * 20})


@pytest.mark.parametrize("space", ["nb201", "fbnet", "mbv3", "anb", "transnas_micro"])
def test_sample_size_is_bounded(space):
    s = get_space(space)
    start = time.perf_counter()
    for n, shown in ((MAX_SAMPLE + 1, "1,000,001"), (10**12, "1,000,000,000,000"), (-1, "-1")):
        with pytest.raises(RequestError, match=f"n must be from 0 to 1,000,000, got {shown}$"):
            s.sample(n)
    with pytest.raises(RequestError, match="n must be an int from 0 to 1,000,000, got 2.5"):
        s.sample(2.5)
    with pytest.raises(RequestError, match="got True"):
        s.sample(True)
    assert time.perf_counter() - start < 0.5
    assert s.sample(0) == []


@pytest.mark.parametrize("space", ["nb201", "fbnet", "mbv3", "anb", "transnas_micro"])
@pytest.mark.parametrize("seed, shown", [(-1, "-1"), (1.5, "1.5"), (True, "True"), ("x", "'x'"), (2**63, str(2**63)),
                                         (None, "None")])
def test_seeds_are_non_negative_ints(space, seed, shown):
    s = get_space(space)
    arch = s.sample(1, seed=0)[0]
    for call in (lambda: s.sample(2, seed=seed), lambda: s.mutate(arch, seed=seed)):
        with pytest.raises(RequestError, match=rf"seed must be an int from 0 to 2\*\*63-1, got {shown}$") as info:
            call()
        assert isinstance(info.value, ArchGenError) and isinstance(info.value, ValueError)
    assert s.sample(2, seed=2**63 - 1) == s.sample(2, seed=2**63 - 1)  # the largest seed works


# -- import cycles ---------------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """Modules of archgen.spaces that ``path`` imports anywhere (top level or inside functions)."""
    package = "archgen.spaces"
    own = f"{package}.{path.stem}" if path.stem != "__init__" else package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own.split(".") if path.stem == "__init__" else own.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from . import get_space` names a package attribute; `from . import nb201` a module
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == package or name.startswith(package + "."):
                stem = name[len(package) + 1:].split(".")[0] if name != package else "__init__"
                if (SPACES_DIR / f"{stem}.py").exists():
                    found.add(stem)
    return found - {path.stem}


def test_no_module_in_spaces_imports_one_that_imports_it_back():
    graph = nx.DiGraph()
    for path in sorted(SPACES_DIR.glob("*.py")):
        graph.add_node(path.stem)
        graph.add_edges_from((path.stem, other) for other in _imports(path))
    assert graph.has_edge("nb201", "nb201_network") and graph.has_edge("anb_network", "mbv3_network")  # sees lazy ones
    back = sorted((a, b) for a, b in graph.edges if graph.has_edge(b, a) and a < b)
    assert back == [], f"modules importing each other: {back}"
    assert list(nx.simple_cycles(graph)) == []


def test_spaces_import_without_torch():
    code = ("import sys; from archgen.spaces import get_space, available_spaces\n"
            "for name in available_spaces():\n"
            "    s = get_space(name); s.to_graph(s.mutate(s.sample(1, seed=1)[0], seed=2))\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("space", ["nb201", "fbnet", "mbv3", "anb", "transnas_micro"])
def test_networks_still_build_from_their_space(space):
    import torch

    s = get_space(space)
    arch = s.sample(1, seed=4)[0]
    net = s.to_module(arch, num_classes=5).eval()
    side = 32 if space in ("nb201", "fbnet") else 64
    with torch.no_grad():
        assert net(torch.randn(1, 3, side, side)).shape == (1, 5)
