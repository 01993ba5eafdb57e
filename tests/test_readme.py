"""The README's code blocks run as written, so a wrong example fails CI.

Every ```bash and ```python block of README.md is run, in order, in one scratch folder
with its own measurement cache:

- Python blocks share one namespace, as in a session that reads the README top to bottom.
  The few names a reader supplies (``my_measured_ms``, ``archs20``, ``my_accuracies``,
  ``my_board``) are defined by :data:`PLACEHOLDERS` from the packaged benchmark tables and
  this machine.
- Each shell command (a line, with ``\\`` continuations) runs in bash. ``board.csv`` is
  written beforehand from the same placeholder measurements.
- ``pip install`` lines are what ``.ci/run`` runs before the tests; the test checks that
  they are there rather than installing again. The test command itself is checked
  against ``.ci/run`` too (running it here would recurse).
- A block preceded by ``<!-- readme-test: parse-only (why) -->`` needs what a CI machine
  lacks (a Ray cluster, GPUs): its ``archgen`` commands are parsed by the real argument
  parser, so a renamed or misspelt option still fails.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archgen.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CI_SCRIPT = REPO / ".ci" / "run"

BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mode>[a-z-]+)[^>]*-->\s*\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```",
                   re.S)

#: names the README leaves to the reader, defined from real data before the Python blocks run
PLACEHOLDERS = textwrap.dedent("""
    import numpy as _np
    from archgen import get_space as _get_space
    from archgen.data import load_table as _load_table
    from archgen.hardware import measure_latency as _measure_latency, to_onnx as _to_onnx

    _nb201, _table = _get_space("nb201"), _load_table("nb201")
        # "my board": pixel3's benchmark latencies, 30% slower
    my_measured_ms = list(1.3 * _table.latencies["pixel3"][_table.rows(_nb201.sample(10, seed=0))])
    # "my task": CIFAR-100 accuracies of 20 other cells
    archs20 = _nb201.sample(20, seed=7)
    my_accuracies = list(_table.accuracies["cifar100"][_table.rows(archs20)])

    class _ThisMachine:
        '''Stands in for the reader's board: times a module with onnxruntime here.'''
        def time(self, module, shape=(1, 3, 32, 32)):
            import tempfile, os
            with tempfile.TemporaryDirectory() as d:
                path = _to_onnx(module, os.path.join(d, "m.onnx"), shape)
                return _measure_latency(path).median_ms

    my_board = _ThisMachine()
    with open("board.csv", "w") as _f:
        _f.write("arch,latency_ms\\n" + "".join(f"{a},{ms:.4f}\\n" for a, ms in zip(_nb201.sample(10, seed=0), my_measured_ms)))
""")


def readme_blocks() -> list[tuple[int, str, str, str]]:
    """``(line, lang, mode, body)`` of every fenced bash/python block, in order."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start("body")) + 1, m["lang"], m["mode"] or "run", m["body"])
            for m in BLOCK.finditer(text)]


def shell_commands(body: str) -> list[str]:
    """A block's commands: lines joined at ``\\`` continuations, blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def ci_commands() -> list[str]:
    return shell_commands(CI_SCRIPT.read_text())


def pip_targets(command: str) -> list[str]:
    """What a ``pip install`` command installs (options dropped, ``-e`` kept with its target)."""
    words = shlex.split(command, comments=True)
    words = words[words.index("install") + 1:]
    return [w for i, w in enumerate(words) if not w.startswith("-") or w == "-e"]


def check_install(line: int, command: str) -> None:
    """A README install is one .ci/run makes too, or installs an extra the project declares."""
    from importlib.metadata import metadata

    extras = metadata("archgen").get_all("Provides-Extra") or []
    installed = {t for ci in ci_commands() if " install " in f" {ci} " and "pip" in ci for t in pip_targets(ci)}
    for target in pip_targets(command):
        extra = re.fullmatch(r"\.\[(\w+)\]", target)
        assert target in installed or target == "-e" or (extra and extra[1] in extras), \
            f"README line {line}: {command.strip()!r} installs {target!r}, which .ci/run does not"


SHELL = [(line, mode, cmd) for line, lang, mode, body in readme_blocks() if lang == "bash"
         for cmd in shell_commands(body)]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder for the whole README session, with its own measurement cache and
    W&B offline; the placeholders (and board.csv) are made first."""
    folder = tmp_path_factory.mktemp("readme")
    env = {**os.environ, "ARCHGEN_CACHE": str(folder / "cache" / "measurements.sqlite"), "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([sys.executable, "-c", PLACEHOLDERS], cwd=folder, env=env, check=True, timeout=300)
    return folder, env


def test_readme_has_blocks():
    blocks = readme_blocks()
    assert sum(lang == "python" for _, lang, _, _ in blocks) >= 5
    assert sum(lang == "bash" for _, lang, _, _ in blocks) >= 8
    assert {mode for _, _, mode, _ in blocks} <= {"run", "parse-only"}


@pytest.mark.parametrize("line,mode,command", SHELL, ids=[f"L{line}:{cmd[:40]}" for line, _, cmd in SHELL])
def test_readme_shell_command(line, mode, command, scratch):
    folder, env = scratch
    words = shlex.split(command, comments=True)
    if "pip" in words[:3]:
        for part in command.split("&&"):
            check_install(line, part)
        return
    if words[:3] == ["python", "-m", "pytest"]:
        assert command in ci_commands(), f"README line {line}: .ci/run does not run {command!r}"
        return
    if mode == "parse-only":
        assert words[0] == "archgen", f"README line {line}: parse-only blocks hold archgen commands"
        build_parser().parse_args(words[1:])  # exits (SystemExit) on an unknown option
        return
    result = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (f"README line {line}: {command}\nexit {result.returncode}\n"
                                    f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")


def test_readme_python_blocks(scratch):
    """All Python blocks in one interpreter and one namespace, top to bottom."""
    folder, env = scratch
    blocks = [(line, body) for line, lang, mode, body in readme_blocks() if lang == "python"]
    runner = PLACEHOLDERS + textwrap.dedent("""
        import sys, traceback
        _blocks = %r
        for _line, _body in _blocks:
            print(f"--- README block at line {_line}", flush=True)
            try:
                exec(compile(_body, f"README.md:{_line}", "exec"), globals())
            except Exception:
                traceback.print_exc()
                sys.exit(f"README block at line {_line} failed")
    """) % (blocks,)
    result = subprocess.run([sys.executable, "-c", runner], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=1200)
    assert result.returncode == 0, f"{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
