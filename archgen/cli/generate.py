"""``archgen generate``: the best architectures for a task, a device and a latency budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..validation import MAX_CANDIDATES, MAX_PROPOSALS, MAX_SAMPLES
from .options import add_command, add_space


def add_parsers(sub) -> None:
    p = add_command(sub, "generate", "generate the best architectures for a task, device and latency budget",
                    cmd_generate, aliases={"k": "local_k", "root": "data", "path": "bundle"})
    add_space(p)
    p.add_argument("--task", default=None,
                   help="task to maximise accuracy on, e.g. cifar100 (default: the bundle's task where it has "
                        "only one, as the FBNet and MobileNetV3 bundles' training-free 'proxy')")
    p.add_argument("--device", default=None,
                   help="device to predict latency on: pretrained, added by `archgen calibrate` or new with "
                        "--calibration (then stored: later calls need neither), or 'local' (this machine: its "
                        "kernel profile from `archgen calibrate --profile`, else calibrated once from --local-k "
                        "measurements and stored; default: none, accuracy only)")
    p.add_argument("--max-latency-ms", type=float, default=None, metavar="MS",
                   help="latency budget on --device in ms (default: no budget)")
    p.add_argument("-n", type=int, default=5, help=f"number of candidates, 1 to {MAX_CANDIDATES:,}")
    p.add_argument("--generator", default="diffusion",
                   help="diffusion, autoregressive, or random (uniform sampling with the same filter: a baseline)")
    p.add_argument("--seed", type=int, default=0, help="seed of the request, 0 to 2**63-1")
    p.add_argument("--samples", type=int, default=None,
                   help=f"architectures generated per request, up to {MAX_SAMPLES:,} (default: 500 in nb201, "
                        "2,000 while measuring; 100 in fbnet; 1,000 in mbv3 and anb)")
    p.add_argument("--strength", type=float, default=None,
                   help="guidance strength on predicted accuracy (default: 64)")
    p.add_argument("--proposals", type=int, default=None,
                   help=f"proposals resampled per sampling step, up to {MAX_PROPOSALS:,} (default: 16 in nb201, "
                        "8 while measuring and in the large spaces)")
    p.add_argument("--margin", type=float, default=None,
                   help="budget safety margin, in predicted latency spreads (default: 1.5)")
    p.add_argument("--calibration", default=None, metavar="FILE.csv",
                   help="measured latencies of the new --device: a CSV with columns arch,latency_ms (default: none)")
    p.add_argument("--local-k", type=int, default=10,
                   help="with --device local and no stored kernel profile: architectures measured here to "
                        "calibrate it (a stored calibration of another k is replaced)")
    p.add_argument("--verify", action="store_true",
                   help="measure the candidates on this machine (onnxruntime) and mark those over budget")
    p.add_argument("--measurements", type=int, default=0, metavar="N",
                   help="with --device local: while generating, measure up to N of the candidates that decide the "
                        "answer here and keep or drop them by their measured latency (hardware in the loop)")
    p.add_argument("--cache", default=None,
                   help="SQLite measurement cache for --device local, --measurements and --verify "
                        "(default: $ARCHGEN_CACHE or ~/.cache/archgen/measurements.sqlite)")
    p.add_argument("--bundle", default=None, help="bundle made by `archgen pretrain` (default: the embedded one)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="benchmark folder for true metrics (default: $ARCHGEN_DATA, else the packaged tables)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write candidates.json, ONNX files and a plot here (default: nothing written)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier outputs of the exported ONNX (default: the task's: cifar10 10, cifar100 100, "
                        "imagenet 1000; for proxy and calibrated tasks the space's)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads while predicting and generating; 0 for torch's own pool, a thread per core, "
                        "which on a busy machine is several times slower")
    p.add_argument("--wandb", action="store_true", help="track the request as a W&B run (offline unless logged in)")
    p.add_argument("--run-dir", default="runs", help="folder for W&B runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def read_calibration(path: str) -> tuple[list[str], list[float]]:
    """``(archs, latencies_ms)`` from a CSV with columns ``arch`` and ``latency_ms``."""
    import csv

    from ..errors import DataError

    file = Path(path)
    if not file.is_file():
        raise DataError(f"calibration file {path!r} does not exist")
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"arch", "latency_ms"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: needs columns arch,latency_ms; missing {', '.join(sorted(missing))} "
                             f"(found {', '.join(reader.fieldnames or []) or 'no header'})")
        archs, values = [], []
        for line, row in enumerate(reader, start=2):
            try:
                values.append(float(row["latency_ms"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path} line {line}: latency_ms {row['latency_ms']!r} is not a number") from None
            archs.append(row["arch"])
    return archs, values


def _stored(ag, device: str):
    """The stored calibration of ``device`` that ``ag`` restored, or None."""
    return next((c for c in ag.calibrations() if c.kind == "device" and c.name == device and c.loaded), None)


def _calibrate(ag, args) -> None:
    if args.device == "local" and not args.calibration:
        stored = _stored(ag, "local")
        if stored is not None and stored.head == "profile":
            print(f"using the stored kernel profile of 'local' (this machine, {stored.created}"
                  + (f", corrected by {stored.k} measurements" if stored.k else "") + "); `archgen calibrations "
                  f"--forget local --space {ag.space.name}` to drop it", file=sys.stderr)
        elif stored is not None and stored.k == args.local_k:
            print(f"using the stored calibration of 'local' ({stored.k} measurements on this machine, "
                  f"{stored.created}); `archgen calibrations --forget local --space {ag.space.name}` to measure "
                  "again", file=sys.stderr)
        elif "local" not in ag.devices() or stored is not None:  # none, or one of another --local-k
            cal = ag.calibrate_local(args.local_k, cache=args.cache)
            print(f"calibrated 'local' (this machine, onnxruntime CPU, 1 thread) from {cal.k} measurements"
                  + ("; stored for later calls" if _stored(ag, "local") else ""), file=sys.stderr)
    if args.calibration:
        if args.device is None:
            raise ValueError("--calibration needs --device NAME for the new device")
        archs, values = read_calibration(args.calibration)
        cal = ag.calibrate_device(args.device, archs, values)
        print(f"calibrated {args.device!r} from {cal.k} measurements in {cal.seconds * 1000:.0f} ms "
              f"(rank agreement on them {cal.fit_spearman:.2f})"
              + (f"; stored: later calls may use --device {args.device} without --calibration"
                 if _stored(ag, args.device) else ""), file=sys.stderr)
    elif args.device not in (None, "local") and (stored := _stored(ag, args.device)) is not None:
        print(f"using the stored calibration of {args.device!r} ({stored.k} measurements, {stored.created})",
              file=sys.stderr)


def _write_out(ag, cands, result: dict, args) -> None:
    """``--out``: one ONNX file per candidate (the task's classes unless --num-classes),
    candidates.json and the accuracy-vs-latency plot."""
    from ..experiment import plot_generation

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for rank, (c, row) in enumerate(zip(cands, result["candidates"]), start=1):
        c.to_onnx(out / f"candidate-{rank}.onnx", num_classes=args.num_classes)
        row["onnx"] = f"candidate-{rank}.onnx"
    if args.device is not None:
        plot_generation(ag, cands, out / "accuracy_vs_latency.png")
    (out / "candidates.json").write_text(json.dumps(result, indent=2))


def cmd_generate(args) -> int:
    import warnings

    from ..api import ArchGen
    from ..errors import GenerationWarning

    if args.num_classes is not None and args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 1, or 0 for torch's own pool; got {args.threads}")
    if args.measurements and args.device != "local":
        raise ValueError("--measurements measures on this machine: it needs --device local "
                         "(the Python API's generate(measure=...) takes any device)")
    if args.device == "local" or args.measurements or args.verify:
        args._on_interrupt = "measurements finished so far are kept in the cache"
    ag = ArchGen.pretrained(args.space, path=args.bundle, data=args.data, threads=args.threads or None)
    _calibrate(ag, args)
    measure = ag.local_measure(cache=args.cache) if args.measurements else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerationWarning)
        cands = ag.generate(args.task, args.device, args.max_latency_ms, n=args.n, generator=args.generator,
                            seed=args.seed, samples=args.samples, strength=args.strength, proposals=args.proposals,
                            margin=args.margin, measure=measure, measurements=args.measurements,
                            wandb=args.wandb, run_dir=args.run_dir)
    for w in caught:
        print(f"archgen generate: note: {w.message}", file=sys.stderr)
    if note := ag.device_note(args.device):
        print(f"archgen generate: note: --device {args.device} is in {note}", file=sys.stderr)
    if args.verify:
        ag.verify(cands, cache=args.cache)
    report = cands.report
    result = {"request": report.request, "settings": report.settings, "metrics": report.metrics(),
              "candidates": [c.to_dict() for c in cands]}
    if args.num_classes is not None:
        for row in result["candidates"]:
            row["num_classes"] = args.num_classes
    measured = [c for c in cands if c.measured_latency_ms is not None]
    if measured and report.request["max_latency_ms"] is not None:
        result["measured_over_budget"] = len(cands.over_budget())
    if note:
        result["device_note"] = note
    if args.out:
        _write_out(ag, cands, result, args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(candidate_table(cands))
    print(summary_line(cands))
    if args.out:
        print(f"wrote {args.out}/candidates.json, {len(cands)} ONNX files" +
              (" and accuracy_vs_latency.png" if args.device is not None else ""))
    return 0


def summary_line(cands) -> str:
    """How the request went, in one line: samples, their quality, what was measured."""
    report = cands.report
    m = report.metrics()
    novelty = "-" if m["novelty"] is None else f"{m['novelty']:.0%}"
    line = (f"{report.samples} samples in {m['seconds']:.2f} s: validity {m['validity']:.0%}, uniqueness "
            f"{m['uniqueness']:.0%}, novelty {novelty}, within budget (predicted) {m['feasible_share']:.0%}")
    if m["measurements"]:
        line += f"; {m['measurements']} candidates measured here while generating"
    measured = [c for c in cands if c.measured_latency_ms is not None]
    if measured and report.request["max_latency_ms"] is not None:
        line += f"; {len(cands.over_budget())} of {len(measured)} measured over budget"
    if m["regret"] is not None:
        line += f"; table oracle {m['oracle_accuracy']:.2f}%, regret {m['regret']:.2f} points"
    return line


def candidate_table(cands) -> str:
    """The candidates as a text table, best first; with measured latencies, a column
    marks those over budget (``OVER``) next to the measured milliseconds."""
    def fmt(value, std=None, digits=2):
        if value is None:
            return "-"
        return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    from ..complexity import PROXY_TASK

    measured = any(c.measured_latency_ms is not None for c in cands)
    accuracy = "pred. proxy" if cands.report.request["task"] == PROXY_TASK else "pred. acc %"
    header = ("#", accuracy, "pred. latency ms", "true acc %", "true ms",
              *(("vs budget", "measured here ms") if measured else ()), "arch")

    def budget_mark(c) -> str:
        return "-" if c.over_budget is None else ("OVER" if c.over_budget else "within")

    rows = [(str(i), fmt(c.predicted_accuracy, c.accuracy_std), fmt(c.predicted_latency_ms, c.latency_std_ms, 3),
             fmt(c.true_accuracy), fmt(c.true_latency_ms, digits=3),
             *((budget_mark(c), fmt(c.measured_latency_ms, digits=3)) if measured else ()), c.arch)
            for i, c in enumerate(cands, start=1)]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])
