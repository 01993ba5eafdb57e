"""Replays issue 15's audit: bad input, corrupt files, kills and races. Prints JSON.

    python bench/audit.py                  # every part (about 5 minutes on 2 cores)
    python bench/audit.py --part inputs    # or: api, bundles, caches, onnx, kills, races

Every case runs in its own process, as a user would meet it: an ``archgen`` command, or
a short Python snippet against the API. A case expects either

- ``error``: the input is wrong. Outcome ``clean`` (non-zero exit, a message, no
  traceback), ``traceback``, ``silent`` (it succeeded: a silent wrong answer) or
  ``hang`` (no answer within the case's time limit);
- ``ok``: the input is fine or tolerable. Outcome ``ok`` when it succeeds and its check
  holds, else ``traceback``/``silent``/``hang``;
- ``either``: a clean error or a right answer will do (exporting into an existing folder,
  a cache row that is not a latency: refusing it or measuring again are both right).

Files the project must not damage (a refused cache) are compared byte for byte before and
after; a changed one counts as ``damaged``. Kill cases count measurements that were in
the cache while the process ran but are missing after it died (``rows_lost``), leftover
temporary ONNX files and leftover Ray worker processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ANB = "e1_k3_l1_se-e6_k3_l2_se-e6_k5_l2_se-e6_k3_l3_se-e6_k5_l3_se-e6_k5_l4_se-e6_k3_l1_se"
MBV3 = "r160:k3e4-k5e6|k7e3-k3e3-k5e4|k3e6-k3e6|k5e4-k5e4|k7e6-k3e3"
FBNET = "k3_e1-skip-k5_e1_g2-k3_e3-k3_e6-skip-k5_e1-k3_e1_g2-k5_e3-k3_e1-k5_e6-skip-k3_e3-k5_e1_g2-k3_e6-k5_e3-" \
        "skip-k3_e1-k5_e6-k3_e3-k5_e1-k3_e6"
HUGE = "9" * 400
#: the installed command, next to this interpreter
ARCHGEN = str(Path(sys.executable).parent / "archgen") if (Path(sys.executable).parent / "archgen").exists() \
    else "archgen"
#: a message longer than this quotes too much of the input
LONG_MESSAGE = 600


@dataclass
class Case:
    name: str
    part: str
    outcome: str = ""
    seconds: float = 0.0
    message: str = ""
    detail: dict = field(default_factory=dict)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def classify(expect: str, rc: int | None, stderr: str, check_ok: bool = True) -> str:
    if rc is None:
        return "hang"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if expect == "error" or (expect == "either" and rc != 0):
        return "clean" if rc != 0 else "silent"
    return "ok" if rc == 0 and check_ok else ("silent" if rc == 0 else "error")


class Audit:
    def __init__(self, work: Path, env: dict):
        self.work, self.env, self.cases = work, env, []

    def run(self, name: str, part: str, argv: list[str], expect: str = "error", timeout: float = 120,
            check=None, keep: list[Path] = (), cwd: Path | None = None) -> Case:
        """Run one process; ``check(stdout, stderr) -> bool`` judges an ``ok`` case;
        ``keep`` are files that must come out byte for byte unchanged."""
        before = {p: _digest(p) for p in keep}
        start = time.perf_counter()
        try:
            proc = subprocess.run(argv, cwd=cwd or self.work, env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = None, exc.stdout or "", exc.stderr or ""
            out, err = (s.decode() if isinstance(s, bytes) else s for s in (out, err))
        ok = True
        if rc == 0 and check is not None:
            try:
                ok = bool(check(out, err))
            except Exception as exc:  # a check that cannot read the output fails the case
                ok, err = False, f"{err}\ncheck failed: {exc!r}"
        case = Case(name, part, classify(expect, rc, err, ok), round(time.perf_counter() - start, 2),
                    (err.strip().splitlines() or [""])[-1][:300])
        changed = [str(p.name) for p in keep if _digest(p) != before[p]]
        if changed:
            case.detail["damaged"] = changed
        if len(err.strip()) > LONG_MESSAGE and case.outcome == "clean":
            case.detail["long_message"] = len(err.strip())
        self.cases.append(case)
        log(f"{case.outcome:9} {case.seconds:6.1f} s  {part}/{name}: {case.message[:120]}")
        return case

    def cli(self, name: str, part: str, *args: str, **kw) -> Case:
        return self.run(name, part, [ARCHGEN, *args], **kw)

    def api(self, name: str, part: str, code: str, **kw) -> Case:
        """Run ``code``; an archgen error ends it as the CLI would (message, exit 2), any
        other exception as a traceback."""
        script = textwrap.dedent("""
            import sys
            from archgen.errors import ArchGenError
            try:
            {body}
            except ArchGenError as exc:
                print(f"error: {{exc}}", file=sys.stderr)
                sys.exit(2)
        """).format(body=textwrap.indent(textwrap.dedent(code), "    "))
        return self.run(name, part, [sys.executable, "-c", script], **kw)


def _digest(path: Path) -> str | None:
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# -- parts ------------------------------------------------------------------------------------------------------

def inputs(a: Audit) -> None:
    """Malformed command lines."""
    p = "inputs"
    for space, bad in [("nb201", "garbage"), ("nb201", "x" * 100_000), ("nb201", f"|nor_conv_3x3~{HUGE}|+|"),
                       ("fbnet", "k3_e1-skip"), ("fbnet", f"k{HUGE}_e1-" * 22), ("mbv3", f"r{HUGE}:k3e4"),
                       ("mbv3", "r160:" + "k3e4-" * 10_000), ("anb", f"e{HUGE}_k3_l1-" * 7), ("anb", ANB + "-x")]:
        a.cli(f"show {space} {bad[:20]!r}... ({len(bad)} chars)", p, "show", bad, "--space", space)
    a.cli("unknown space", p, "show", NB201, "--space", "nb202")
    gen = ["generate", "--task", "cifar100", "--device", "pixel3", "--max-latency-ms", "12"]
    for label, extra in [("unknown device", ["--device", "pixel33"]), ("unknown task", ["--task", "cifar1000"]),
                         ("unknown generator", ["--generator", "gan"]), ("n 0", ["-n", "0"]),
                         ("n 1e9", ["-n", "1000000000"]), ("samples 1e9", ["--samples", "1000000000"]),
                         ("proposals 1e6", ["--proposals", "1000000"]), ("seed -1", ["--seed", "-1"]),
                         ("seed 2**80", ["--seed", str(2**80)]), ("budget nan", ["--max-latency-ms", "nan"]),
                         ("budget -1", ["--max-latency-ms", "-1"]), ("budget inf", ["--max-latency-ms", "inf"]),
                         ("budget too small", ["--max-latency-ms", "0.0001"]), ("strength nan", ["--strength", "nan"]),
                         ("margin -1", ["--margin", "-1"]), ("measurements off-device", ["--measurements", "3"]),
                         ("missing calibration", ["--device", "b", "--calibration", "missing.csv"]),
                         ("calibration bad columns", ["--device", "b", "--calibration", "cols.csv"]),
                         ("calibration not numbers", ["--device", "b", "--calibration", "text.csv"]),
                         ("calibration negative ms", ["--device", "b", "--calibration", "negative.csv"]),
                         ("calibration unknown arch", ["--device", "b", "--calibration", "unknown_arch.csv"]),
                         ("calibration empty", ["--device", "b", "--calibration", "empty.csv"]),
                         ("garbage bundle", ["--bundle", "garbage.pt"]), ("bundle is a folder", ["--bundle", "."]),
                         ("data folder missing", ["--data", "/nonexistent/archgen-data"])]:
        args = list(gen)
        for i in range(0, len(extra), 2):
            flag = extra[i]
            if flag in args:
                args[args.index(flag) + 1] = extra[i + 1]
            else:
                args += extra[i:i + 2]
        a.cli(f"generate {label}", p, *args)
    for label, extra in [("sample -1", ["--sample", "-1"]), ("sample 1e7", ["--sample", "10000000"]),
                         ("sample 10**30", ["--sample", str(10**30)]), ("seed -5", ["--sample", "1", "--seed", "-5"]),
                         ("threads 0", ["--threads", "0"]), ("rounds 0", ["--rounds", "0"]),
                         ("repeats 0", ["--repeats", "0"]), ("warmup -1", ["--warmup", "-1"]),
                         ("batch 0", ["--batch-size", "0"]), ("nothing to measure", [])]:
        a.cli(f"measure {label}", p, "measure", *([] if label == "nothing to measure" or "sample" in label
                                                    or "seed" in label else [NB201]), *extra,
              "--no-progress", timeout=60)
    a.cli("train gpu without one", p, "train", NB201, "--accelerator", "gpu", "--epochs", "1")
    a.cli("train data missing", p, "train", NB201, "--data", "nosuch.npz", "--epochs", "1")
    a.cli("train data garbage", p, "train", NB201, "--data", "garbage.npz", "--epochs", "1")
    a.cli("train epochs 0", p, "train", NB201, "--epochs", "0")
    a.cli("pretrain data missing", p, "pretrain", "--data", "/nonexistent/archgen-data")
    a.cli("pretrain unknown encoder", p, "pretrain", "--encoder", "gat")
    a.cli("pretrain epochs 0", p, "pretrain", "--latency-epochs", "0")
    a.cli("pretrain gpu without one", p, "pretrain", "--accelerator", "gpu", "--generators", "",
          "--latency-epochs", "1", "--accuracy-epochs", "1")
    (a.work / "existing").mkdir(exist_ok=True)
    a.cli("export into an existing folder", p, "export", NB201, "existing", expect="either",
          check=lambda out, err: any(f.suffix == ".onnx" for f in (a.work / "existing").iterdir()))
    a.cli("export batch 0", p, "export", NB201, "x.onnx", "--batch-size", "0")


def api(a: Audit) -> None:
    """Bad values through the Python API, where a wrong answer would be silent."""
    p = "api"
    head = ("from archgen import ArchGen; ag = ArchGen.pretrained('nb201'); "
            "archs = ag.space.sample(20, seed=3)\n")
    for label, values in [("150%", "[150 + i / 2 for i in range(20)]"), ("negative", "[-5.0 + i for i in range(20)]"),
                          ("fractions", "[0.5 + i / 100 for i in range(20)]"), ("nan", "[float('nan')] * 20"),
                          ("all equal", "[70.0] * 20"), ("length mismatch", "[70.0] * 19")]:
        a.api(f"calibrate_task {label}", p, head + f"ag.calibrate_task('t', archs, {values})")
    a.api("calibrate_task fractions with units", p, head + "c = ag.calibrate_task('t', archs, "
          "[0.5 + i / 100 for i in range(20)], units='fraction')\n"
          "assert 50 < ag.predict_accuracy(archs, task='t').mean.mean() < 75", expect="ok")
    for label, values in [("negative", "[-1.0] * 10"), ("zero", "[0.0] * 10"), ("nan", "[float('nan')] * 10"),
                          ("inf", "[float('inf')] * 10")]:
        a.api(f"calibrate_device {label}", p, head + f"ag.calibrate_device('b', archs[:10], {values})")
    a.api("calibrate_device unknown arch", p, head + "ag.calibrate_device('b', ['nope'] * 10, [1.0] * 10)")
    for label, call in [("sample 1e9", "sample(10**9)"), ("sample -1", "sample(-1)"), ("seed -1", "sample(3, seed=-1)"),
                        ("seed 1.5", "sample(3, seed=1.5)"), ("seed True", "sample(3, seed=True)"),
                        ("mutate seed -1", f"mutate({NB201!r}, seed=-1)")]:
        a.api(f"space.{label}", p, f"from archgen import get_space; get_space('nb201').{call}")
    for label, kw in [("n 1e9", "n=10**9"), ("samples 1e9", "samples=10**9"), ("proposals 1e6", "proposals=10**6"),
                      ("seed -1", "seed=-1"), ("seed 0.5", "seed=0.5")]:
        a.api(f"generate {label}", p, head + f"ag.generate('cifar100', 'pixel3', 12.0, {kw})")
    a.api("generate without task, two tasks", p, head + "ag.generate(device='pixel3', max_latency_ms=12.0)")
    a.api("generate without task, one task", p, "from archgen import ArchGen\n"
          "c = ArchGen.pretrained('fbnet').generate(device='pixel3', max_latency_ms=25.0, n=2)\nassert len(c) == 2",
          expect="ok")
    a.api("mbv3 imagenet at r160", p, "from archgen import ArchGen\n"
          f"ArchGen.pretrained('mbv3').predict_accuracy([{MBV3!r}], task='imagenet')")
    a.api("predict unknown device", p, head + "ag.predict_latency(archs, device='pixel33')")
    a.api("predict a number as arch", p, head + "ag.predict_latency([42], device='pixel3')")


def bundles(a: Audit) -> None:
    """Corrupt, foreign and hostile bundle files."""
    p = "bundles"
    make = textwrap.dedent("""
        import math, torch
        from archgen.api import bundled_path
        payload = torch.load(bundled_path("nb201"), weights_only=True)
        def tensors(obj):
            if isinstance(obj, torch.Tensor):
                yield obj
            elif isinstance(obj, dict):
                for v in obj.values(): yield from tensors(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj: yield from tensors(v)
        def save(name, value): torch.save(value, name)
        save("b_generators_list.pt", {**payload, "generators": []})
        save("b_no_latency.pt", {k: v for k, v in payload.items() if k != "latency"})
        save("b_latency_str.pt", {**payload, "latency": "hello"})
        save("b_format_9.pt", {**payload, "format": 9})
        save("b_list.pt", [1, 2, 3])
        big = max((t for t in tensors(payload["latency"]) if t.is_floating_point()), key=lambda t: t.numel())
        big.view(-1)[0] = float("nan")
        save("b_nan.pt", payload)
        class Evil:
            def __reduce__(self):
                return (print, ("this would have run code",))
        torch.save({"format": 2, "x": Evil()}, "b_evil.pt")
        data = open(bundled_path("nb201"), "rb").read()
        open("b_truncated.pt", "wb").write(data[: len(data) // 2])
    """)
    subprocess.run([sys.executable, "-c", make], cwd=a.work, env=a.env, check=True)
    for name in ["b_generators_list", "b_no_latency", "b_latency_str", "b_format_9", "b_list", "b_nan", "b_evil",
                 "b_truncated", "garbage"]:
        case = a.cli(f"bundle {name}", p, "generate", "--bundle", f"{name}.pt", "--task", "cifar10",
                     "--device", "pixel3", "--max-latency-ms", "12")
        if "weights_only=False" in case.message:
            case.outcome = "silent"  # advice that would run the payload's code
            case.detail["advises_unsafe_load"] = True


def caches(a: Audit) -> None:
    """Damaged, foreign and poisoned measurement caches: refused untouched, or read right."""
    p = "caches"
    good = a.work / "good.sqlite"
    a.cli("make a cache", p, "measure", "--sample", "3", "--seed", "1", "--cache", str(good), "--no-progress",
          expect="ok", timeout=300)
    # a bigger file, so that damage past the header hits real pages
    con = sqlite3.connect(good)
    table = "measurements"
    cols = [r[1] for r in con.execute(f"pragma table_info({table})")]
    rows = con.execute(f"select * from {table}").fetchall()
    for i in range(400):
        row = list(rows[0])
        row[cols.index("arch_hash")] = f"filler{i:05d}" + "0" * 50
        con.execute(f"insert into {table} values ({','.join('?' * len(row))})", row)
    con.commit()
    con.close()
    data = good.read_bytes()

    def variant(name: str, content: bytes) -> Path:
        path = a.work / f"{name}.sqlite"
        path.write_bytes(content)
        return path

    middle = bytearray(data)
    middle[len(data) // 2: len(data) // 2 + 512] = os.urandom(512)
    header = bytearray(data)
    header[:100] = os.urandom(100)
    for name, content in [("damaged_middle", bytes(middle)), ("damaged_header", bytes(header)),
                          ("text_file", b"hello, not a database\n" * 10)]:
        path = variant(name, content)
        a.cli(f"cache {name}", p, "measure", NB201, "--cache", str(path), "--no-progress", keep=[path])
    foreign = a.work / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("create table notes (x text)")
    con.commit()
    con.close()
    a.cli("cache foreign database", p, "measure", NB201, "--cache", str(foreign), "--no-progress", keep=[foreign])
    empty = variant("zero_bytes", b"")
    a.cli("cache zero-byte file (new)", p, "measure", NB201, "--cache", str(empty), "--no-progress", expect="ok",
          timeout=120)
    for label, value in [("nan", float("nan")), ("negative", -1.0), ("zero", 0.0)]:
        path = variant(f"poisoned_{label}", data)
        con = sqlite3.connect(path)
        for key, text in con.execute(f"select rowid, measurement from {table}").fetchall():
            stored = json.loads(text)
            stored.update({k: value for k in ("floor_ms", "median_ms", "p10_ms", "mean_ms")})
            con.execute(f"update {table} set measurement = ? where rowid = ?", (json.dumps(stored), key))
        con.commit()
        con.close()
        a.cli(f"cache stored latency {label}", p, "measure", "--sample", "3", "--seed", "1", "--cache", str(path),
              "--json", "--no-progress", expect="either", timeout=300,
              check=lambda out, err: all(0 < (r.get("floor_ms") or r["median_ms"]) < 1e4 for r in json.loads(out)))


def onnx_files(a: Audit) -> None:
    """Hostile ONNX files for ``archgen show``."""
    p = "onnx"
    make = textwrap.dedent("""
        import onnx
        from onnx import TensorProto, helper
        def model(nodes, inputs, outputs, inits=()):
            g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
            return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        n = 12000
        shape = helper.make_tensor("shape", TensorProto.INT64, [2], [n, n])
        nodes = [helper.make_node("ConstantOfShape", ["shape"], ["w"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
                 helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("MatMul", ["y", "w"], ["z"])]
        onnx.save(model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [n, n])], [shape]), "huge_matmul.onnx")
        nodes = [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                 helper.make_node("Add", ["x", "a"], ["y"])]
        onnx.save(model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]), "cyclic.onnx")
        nodes = [helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,jk->ik")]
        onnx.save(model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])]), "einsum.onnx")
        open("empty.onnx", "wb").close()
        open("garbage.onnx", "wb").write(b"\\x08\\x07garbage" * 100)
        import os; os.makedirs("folder.onnx", exist_ok=True)
    """)
    subprocess.run([sys.executable, "-c", make], cwd=a.work, env=a.env, check=True)
    a.cli("huge MatMul (must not execute)", p, "show", "huge_matmul.onnx", expect="ok", timeout=30)
    for name in ["cyclic", "einsum", "empty", "garbage", "folder", "missing"]:
        a.cli(f"show {name}.onnx", p, "show", f"{name}.onnx", timeout=60)


def _rows(path: Path) -> int:
    """Measurements in a cache, read-only (never creates or changes the file)."""
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            found = con.execute("select name from sqlite_master where type='table' and name='measurements'").fetchone()
            return con.execute("select count(*) from measurements").fetchone()[0] if found else 0
        finally:
            con.close()
    except sqlite3.Error:
        return -1


def _ray_processes() -> int:
    """Ray processes on this machine: workers (``ray::``) and a cluster's own (raylet, GCS)."""
    out = subprocess.run(["pgrep", "-f", "ray::|raylet|gcs_server"], capture_output=True, text=True).stdout.split()
    return len(out)


def _ray_left(before: int, grace: float) -> tuple[int, float]:
    """Ray processes above ``before`` still alive after up to ``grace`` seconds, and the
    seconds they took to go: after a kill -9 nothing of the driver runs, and the
    cluster's raylet notices the dead driver only after a few seconds."""
    start = time.perf_counter()
    while time.perf_counter() - start < grace and _ray_processes() > before:
        time.sleep(0.5)
    return max(0, _ray_processes() - before), round(time.perf_counter() - start, 1)


def kills(a: Audit) -> None:
    """kill -9 and Ctrl-C in the middle of measuring: what was stored stays stored."""
    p = "kills"
    tmp = a.work / "tmpdir"
    tmp.mkdir(exist_ok=True)
    env = {**a.env, "TMPDIR": str(tmp)}
    ray_before = _ray_processes()
    for label, extra, sig in [("serial kill -9", [], signal.SIGKILL), ("ray kill -9", ["--ray"], signal.SIGKILL),
                              ("serial Ctrl-C", [], signal.SIGINT), ("ray Ctrl-C", ["--ray"], signal.SIGINT)]:
        cache = a.work / f"kill_{label.replace(' ', '_')}.sqlite"
        start = time.perf_counter()
        proc = subprocess.Popen([ARCHGEN, "measure", "--sample", "60", "--seed", "9",
                                 "--cache", str(cache), "--no-progress", *extra], cwd=a.work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        seen, deadline = 0, time.time() + 240
        while time.time() < deadline and proc.poll() is None and seen < 20:
            seen = max(seen, _rows(cache))
            time.sleep(0.2)
        if sig == signal.SIGKILL:
            proc.kill()
        else:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            hung = True
        ray_left, ray_seconds = _ray_left(ray_before, 120 if sig == signal.SIGKILL else 10)
        after = _rows(cache)
        leftovers = [str(f) for f in tmp.rglob("*.onnx")]
        case = Case(label, p, "hang" if hung else "ok", round(time.perf_counter() - start, 1),
                    (err.strip().splitlines() or [""])[-1][:300],
                    {"rows_seen_before": seen, "rows_after": after, "rows_lost": max(0, seen - max(after, 0)),
                     "tmp_onnx_left_after_kill": len(leftovers)})
        if sig == signal.SIGINT and "Traceback (most recent call last)" in err:
            case.outcome = "traceback"
        # the next start cleans what a killed run left
        subprocess.run([ARCHGEN, "measure", NB201, "--cache", str(cache), "--no-progress"],
                       cwd=a.work, env=env, capture_output=True, timeout=300)
        case.detail["tmp_onnx_left_after_next_start"] = len(list(tmp.rglob("*.onnx")))
        case.detail.update(ray_processes_left=ray_left, ray_processes_gone_after_s=ray_seconds)
        if case.detail["rows_lost"] or case.detail["tmp_onnx_left_after_next_start"] or ray_left:
            case.outcome = "silent" if case.outcome == "ok" else case.outcome
        a.cases.append(case)
        log(f"{case.outcome:9} {case.seconds:6.1f} s  {p}/{label}: {case.detail}")


def races(a: Audit, rounds: int = 100, processes: int = 16) -> None:
    """Several processes opening one new cache at once."""
    p = "races"
    code = textwrap.dedent(f"""
        import sys, multiprocessing as mp
        from pathlib import Path
        def first_open(path):
            from archgen.measurements import MeasurementCache, RuntimeSettings
            try:
                with MeasurementCache(path) as cache:
                    cache.put("nb201", "h" + str(mp.current_process().pid), (1, 3, 32, 32), RuntimeSettings(), "m",
                              "arch", _measurement())
                return ""
            except Exception as exc:
                return f"{{type(exc).__name__}}: {{exc}}"
        def _measurement():
            from archgen.hardware import LatencyMeasurement
            return LatencyMeasurement(median_ms=1.0, p10_ms=1.0, p90_ms=1.0, mean_ms=1.0, std_ms=0.0, repeats=10,
                                      warmup=1, threads=1, batch_size=1, rounds=1, floor_ms=1.0)
        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            failures = []
            with ctx.Pool({processes}) as pool:
                for r in range({rounds}):
                    path = str(Path(sys.argv[1]) / f"race{{r}}.sqlite")
                    failures += [f for f in pool.map(first_open, [path] * {processes}) if f]
            print(len(failures))
            for f in sorted(set(failures))[:5]: print(f, file=sys.stderr)
    """)
    folder = a.work / "races"
    folder.mkdir(exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=a.work, env=a.env, capture_output=True,
                          text=True, timeout=600)
    failures = int(proc.stdout.strip() or -1) if proc.returncode == 0 else -1
    case = Case(f"{processes} processes x {rounds} new caches", p, "ok" if failures == 0 else "silent",
                round(time.perf_counter() - start, 1), proc.stderr.strip()[-300:],
                {"opens": rounds * processes, "failed_opens": failures})
    if proc.returncode != 0:
        case.outcome = "traceback"
    a.cases.append(case)
    log(f"{case.outcome:9} {case.seconds:6.1f} s  {p}/{case.name}: {case.detail} {case.message}")


PARTS = {"inputs": inputs, "api": api, "bundles": bundles, "caches": caches, "onnx": onnx_files, "kills": kills,
         "races": races}


def fixtures(work: Path) -> None:
    """Bad files the input cases read."""
    (work / "cols.csv").write_text("architecture,ms\nx,1\n")
    (work / "text.csv").write_text(f"arch,latency_ms\n{NB201},fast\n")
    from archgen import get_space

    archs = get_space("nb201").sample(10, seed=0)
    (work / "negative.csv").write_text("arch,latency_ms\n" + "".join(f"{a},-{i + 1}\n" for i, a in enumerate(archs)))
    (work / "unknown_arch.csv").write_text("arch,latency_ms\n" + "".join(f"nope{i},{i + 1}\n" for i in range(10)))
    (work / "empty.csv").write_text("")
    (work / "garbage.pt").write_bytes(os.urandom(4096))
    (work / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip" * 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all", help="which cases (default all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archgen-audit-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "ARCHGEN_CACHE": str(work / "cache" / "measurements.sqlite"), "WANDB_MODE": "offline",
               "OMP_NUM_THREADS": "1"}
        fixtures(work)
        audit = Audit(work, env)
        for name, part in PARTS.items():
            if args.part in (name, "all"):
                part(audit)
    counts = Counter(c.outcome for c in audit.cases)
    cases = audit.cases
    print(json.dumps({
        "protocol": "issue 15's audit replayed: every case in its own process (an archgen command or an API "
                    "snippet); error cases must end with a message and a non-zero exit, no traceback, within "
                    "their time limit; refused files must stay byte for byte; kills count cache rows seen "
                    "before the kill but missing after it",
        "counts": {
            "inputs_tried": len(cases),
            "clean_errors": counts["clean"],
            "ok": counts["ok"],
            "tracebacks": counts["traceback"],
            "silent_wrong_answers": counts["silent"],
            "hangs": counts["hang"],
            "rows_lost": sum(c.detail.get("rows_lost", 0) for c in cases),
            "files_damaged": sum(bool(c.detail.get("damaged")) for c in cases),
            "long_messages": sum("long_message" in c.detail for c in cases),
            "unexpected_errors": counts["error"],
        },
        "by_part": {part: dict(Counter(c.outcome for c in cases if c.part == part)) for part in PARTS
                    if any(c.part == part for c in cases)},
        "failures": [asdict(c) for c in cases if c.outcome not in ("clean", "ok") or c.detail.get("damaged")
                     or "long_message" in c.detail],
        "cases": [asdict(c) for c in cases],
    }, indent=2))


if __name__ == "__main__":
    main()
