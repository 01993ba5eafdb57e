"""Scratch files live under the cache folder, one folder per process: a `kill -9`
leaves nothing in the system temp folder, and the next start removes what it left."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from archgen.cache import _host, remove_stale_scratch, scratch_folder
from conftest import REPO


def _env(tmp_path):
    """A child's environment: an empty TMPDIR to watch and a cache of its own."""
    tmpdir = tmp_path / "systemp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), ARCHGEN_CACHE=str(tmp_path / "cache" / "measurements.sqlite"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return env, tmpdir, tmp_path / "cache" / "tmp"


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_kill_9_mid_measure_leaves_nothing_in_tmpdir_and_the_next_start_cleans_up(tmp_path):
    env, tmpdir, scratch = _env(tmp_path)
    script = textwrap.dedent("""
        from archgen.measurements import RuntimeSettings, measure_archs
        from archgen.spaces import get_space
        space = get_space("nb201")
        measure_archs(space, space.sample(64, seed=5), RuntimeSettings(warmup=5, repeats=50), progress=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(scratch.glob("*/onnx-*/model*.onnx")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # into the timing of the first group
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert [p for p in _files(tmpdir) if p.endswith(".onnx")] == []  # nothing in the system temp folder
    left = list(scratch.iterdir())
    assert [p.name.rsplit("-", 2)[1] for p in left] == [str(child.pid)]
    assert list(left[0].glob("onnx-*/model*.onnx"))  # killed mid-measure: its exports are still there
    # the next archgen process that needs scratch space removes them, and its own folder at exit
    subprocess.run([sys.executable, "-c", "from archgen.cache import scratch_folder; scratch_folder()"], env=env,
                   cwd=tmp_path, check=True, timeout=60)
    assert list(scratch.iterdir()) == []


def test_only_dead_processes_of_this_host_lose_their_scratch(tmp_path):
    host = _host()
    dead = tmp_path / f"{host}-{_dead_pid()}-0badc0de"
    alive = tmp_path / f"{host}-{os.getppid()}-0000aaaa"
    elsewhere = tmp_path / f"otherhost-{_dead_pid()}-1234abcd"  # a shared home: another machine's pids
    stranger = tmp_path / "not-a-scratch-folder"
    for folder in (dead, alive, elsewhere, stranger):
        (folder / "onnx-x").mkdir(parents=True)
        (folder / "onnx-x" / "model0.onnx").write_bytes(b"onnx")
    assert remove_stale_scratch(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (alive, elsewhere, stranger))


def test_scratch_folder_is_one_per_process_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "c" / "m.sqlite"))
    monkeypatch.setattr("archgen.cache._scratch", None)
    folder = scratch_folder()
    assert folder.parent == tmp_path / "c" / "tmp" and folder.name.split("-")[-2] == str(os.getpid())
    assert scratch_folder() == folder


def test_a_measurement_leaves_no_exports_behind(tmp_path, nb201, monkeypatch):
    from archgen.measurements import RuntimeSettings, measure_archs

    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "c" / "m.sqlite"))
    monkeypatch.setattr("archgen.cache._scratch", None)
    measure_archs(nb201, nb201.sample(1, seed=3), RuntimeSettings(warmup=0, repeats=1), cache=False, progress=False)
    assert _files(tmp_path / "c" / "tmp") == []


def test_the_gin_encoder_writes_nothing_to_tmpdir(tmp_path):
    """torch_geometric writes each message-passing layer's generated module with
    NamedTemporaryFile(delete=False); it goes to the process's scratch folder instead."""
    env, tmpdir, scratch = _env(tmp_path)
    encoder = "gin"
    script = textwrap.dedent(f"""
        import sys
        from archgen.spaces import get_space
        from graph_encoders import build_encoder, encoder_options, make_batcher
        space = get_space("nb201")
        encoder = build_encoder({encoder!r}, **encoder_options(space, {encoder!r}))
        batch = make_batcher(space, "full", {encoder!r}).batch(space.sample(3, seed=0))
        assert encoder(batch).shape[0] == 3
        generated = [m.__file__ for n, m in sys.modules.items() if n.endswith("_propagate")]
        print("\\n".join(generated))
    """)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    generated = done.stdout.split()  # the generated module lived in the scratch folder while the process ran
    assert generated and all(path.startswith(str(scratch)) for path in generated)
    assert _files(tmpdir) == []
    # torch._dynamo's import makes its own (empty, reused) compile cache folder; nothing else may appear
    assert all(p.name.startswith("torchinductor_") for p in tmpdir.iterdir())
    assert not scratch.exists() or list(scratch.iterdir()) == []  # removed at exit
