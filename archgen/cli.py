"""The ``archgen`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ArchGenError, UnknownNameError


def _add_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="nb201", help="search space name (see `archgen spaces`; default nb201)")


def _add_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default 10)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the example input (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archgen",
        description="Design neural networks for a device and latency budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("spaces", help="list the search spaces")
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("show", help="print an architecture's graph, parameters and FLOPs, "
                       "or the atomic graph of an .onnx model")
    p.add_argument("arch", help="architecture string of the space, or the path of an .onnx model")
    _add_space(p)
    _add_build(p)
    p.add_argument("--nodes", type=int, default=12, metavar="N",
                   help="with an .onnx model: print its first N nodes (default 12; 0 for none, -1 for all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="build an architecture and export it to ONNX")
    p.add_argument("arch", help="architecture string of the space")
    p.add_argument("out", help="output .onnx path")
    _add_space(p)
    _add_build(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("measure", help="measure architectures' onnxruntime latency on this machine (cached)")
    p.add_argument("arch", nargs="*", help="architecture strings of the space")
    _add_space(p)
    _add_build(p)
    p.add_argument("--sample", type=int, default=0, metavar="N", help="also measure N random architectures")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="discarded warm-up runs (default 10)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per round (default 10)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds over the architectures; the lowest round's 10th percentile is the "
                        "latency (default 5)")
    p.add_argument("--cache", default=None, help="SQLite measurement cache (default: $ARCHGEN_CACHE or "
                   "~/.cache/archgen/measurements.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="measure everything again and store nothing")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write arch,latency_ms (a --calibration file)")
    _add_ray(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("pretrain", help="pretrain a space's latency and accuracy predictors and generators into a bundle")
    _add_space(p)
    p.add_argument("--data", default=None, help="benchmark data folder (default: $ARCHGEN_DATA, else the packaged tables)")
    p.add_argument("--out", default=None, help="bundle path to write (default: ./<space>-bundle.pt)")
    p.add_argument("--devices", default=None, help="comma-separated devices to train on (default: all)")
    p.add_argument("--exclude-devices", default="", help="comma-separated devices to hold out")
    p.add_argument("--tasks", default=None, help="comma-separated tasks to train on (default: all)")
    p.add_argument("--exclude-tasks", default="", help="comma-separated tasks to hold out")
    p.add_argument("--latency-epochs", type=int, default=None, help="epochs of the latency predictor")
    p.add_argument("--accuracy-epochs", type=int, default=None, help="epochs of the accuracy predictor")
    p.add_argument("--encoder", default=None, help="graph encoder of both predictors: gin (default) or dag")
    p.add_argument("--generators", default="diffusion,autoregressive",
                   help="comma-separated generators to train (default: diffusion,autoregressive; '' for none)")
    p.add_argument("--generator-epochs", type=int, default=None, help="epochs of each generator")
    p.add_argument("--reuse-latency", default=None, metavar="BUNDLE",
                   help="keep the latency predictor of this earlier bundle of the space (default: train one); "
                        "it gains a feature student where the space's requests need one")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu (default), gpu, auto")
    p.add_argument("--trainer-devices", default="1",
                   help="Lightning devices per node (default 1; --devices names benchmark devices here)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    p.add_argument("--num-nodes", type=int, default=1, help="Lightning nodes (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline unless logged in)")
    p.add_argument("--run-dir", default="runs", help="folder for W&B runs and checkpoints (default ./runs)")
    p.add_argument("--checkpoints", action="store_true", help="keep Lightning checkpoints under --run-dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", help="train architectures on real images and report their test accuracy")
    p.add_argument("arch", nargs="+", help="architecture string(s) of the space")
    _add_space(p)
    p.add_argument("--data", default="digits",
                   help="'digits' (scikit-learn's bundled digits, default), an .npz (images, labels) or a class folder")
    p.add_argument("--epochs", type=int, default=15, help="maximum epochs (early stopping on validation accuracy)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine schedule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, default=None, help="network width C (NB201 default for training: 8)")
    p.add_argument("--cells-per-stage", type=int, default=None, help="cells per stage N (NB201 default for training: 1)")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu (default), gpu, auto")
    p.add_argument("--devices", default="1", help="Lightning devices (default 1)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp for several GPUs")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline unless logged in)")
    p.add_argument("--run-dir", default="runs", help="folder for checkpoints and W&B runs (default ./runs)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_ray(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="generate the best architectures for a task, device and latency budget")
    _add_space(p)
    p.add_argument("--task", default=None,
                   help="task to maximise accuracy on (e.g. cifar100; default: the bundle's task when it has one, "
                        "as the FBNet and MobileNetV3 bundles' training-free 'proxy')")
    p.add_argument("--device", default=None, help="device to predict latency on (pretrained, or new with --calibration)")
    p.add_argument("--max-latency-ms", type=float, default=None, help="latency budget on --device (ms)")
    p.add_argument("-n", type=int, default=5, help="number of candidates (default 5)")
    p.add_argument("--generator", default="diffusion", help="diffusion (default) or autoregressive")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=None, help="architectures generated per request")
    p.add_argument("--strength", type=float, default=None, help="guidance strength on predicted accuracy")
    p.add_argument("--proposals", type=int, default=None, help="proposals resampled per sampling step")
    p.add_argument("--margin", type=float, default=None, help="budget safety margin, in predicted latency spreads")
    p.add_argument("--calibration", default=None, metavar="FILE.csv",
                   help="measured latencies of the new --device: a CSV with columns arch,latency_ms")
    p.add_argument("--local-k", type=int, default=10,
                   help="with --device local: architectures measured here to calibrate it (default 10)")
    p.add_argument("--verify", action="store_true",
                   help="measure the candidates on this machine (onnxruntime) next to their predicted latency")
    p.add_argument("--measurements", type=int, default=0, metavar="N",
                   help="with --device local: while generating, measure up to N of the candidates that decide the "
                        "answer here and keep or drop them by their measured latency (hardware in the loop)")
    p.add_argument("--cache", default=None,
                   help="SQLite measurement cache for --device local, --measurements and --verify")
    p.add_argument("--bundle", default=None, help="bundle made by `archgen pretrain` (default: the embedded one)")
    p.add_argument("--data", default=None, help="benchmark folder for true metrics (default: $ARCHGEN_DATA, else the packaged tables)")
    p.add_argument("--out", default=None, metavar="DIR", help="write candidates.json, ONNX files and a plot here")
    p.add_argument("--num-classes", type=int, default=10, help="classifier outputs of the exported ONNX (default 10)")
    p.add_argument("--wandb", action="store_true", help="track the request as a W&B run (offline unless logged in)")
    p.add_argument("--run-dir", default="runs", help="folder for W&B runs (default ./runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_generate)
    return parser


def _input_shape(space, arch: str, batch_size: int) -> tuple[int, ...]:
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    return (batch_size, *space.input_shape_of(arch))


def cmd_spaces(args) -> int:
    from .spaces import available_spaces, get_space

    for name in available_spaces():
        space = get_space(name)
        size = f"{space.size:,} architectures" if space.size else "not enumerable"
        doc = (type(space).__doc__ or "").strip().splitlines()[0]
        print(f"{name:<8} {size:<24} {doc}")
    return 0


def _show_onnx(args) -> int:
    """``archgen show model.onnx``: the model's atomic computation graph."""
    from .atomic import from_onnx, op_counts, summary_table

    graph = from_onnx(args.arch)
    if args.json:
        print(json.dumps({"model": args.arch, "nodes": graph.num_nodes, "edges": graph.nx.number_of_edges(),
                          "op_counts": op_counts(graph), "graph": graph.to_dict()}, indent=2))
        return 0
    print(f"model          {args.arch}")
    print(summary_table(graph, nodes=graph.num_nodes if args.nodes < 0 else args.nodes))
    return 0


def cmd_show(args) -> int:
    from .hardware import count_flops, count_parameters
    from .spaces import get_space

    if args.arch.lower().endswith(".onnx"):
        return _show_onnx(args)

    space = get_space(args.space)
    arch = space.parse(args.arch)
    graph = space.to_graph(arch)
    module = space.to_module(arch, num_classes=args.num_classes)
    shape = _input_shape(space, arch, args.batch_size)
    info = {
        "space": space.name,
        "arch": arch,
        "canonical_hash": graph.canonical_hash(),
        "equivalence_key": space.equivalence_key(arch),
        "parameters": count_parameters(module),
        "flops": count_flops(module, shape),
        "input_shape": list(shape),
        "graph": graph.to_dict(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"space          {info['space']}")
    print(f"arch           {arch}")
    print(f"canonical hash {info['canonical_hash']}")
    print(f"function       {info['equivalence_key']}")
    print(f"parameters     {info['parameters']:,} ({info['parameters'] / 1e6:.3f} M)")
    print(f"FLOPs          {info['flops']:,} ({info['flops'] / 2e6:.2f} M multiply-adds) at input {tuple(shape)}")
    print("graph (node op <- inputs):")
    print(graph.summary())
    return 0


def cmd_export(args) -> int:
    from .hardware import to_onnx
    from .spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    module = space.to_module(arch, num_classes=args.num_classes)
    path = to_onnx(module, args.out, _input_shape(space, arch, args.batch_size))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def _add_ray(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run each candidate as a Ray task: on the cluster at ADDRESS, or a local one without it "
                        "(needs `pip install \"archgen[distributed]\"`)")
    p.add_argument("--ray-workers", type=int, default=2, help="CPUs of the local Ray cluster (default 2)")


def _runtime_settings(args):
    from .measurements import RuntimeSettings

    return RuntimeSettings(threads=args.threads, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
                           batch_size=args.batch_size, num_classes=args.num_classes).checked()


def cmd_measure(args) -> int:
    from .measurements import measure_archs
    from .spaces import get_space

    space = get_space(args.space)
    if args.sample < 0:
        raise ValueError(f"--sample must be >= 0, got {args.sample}")
    archs = [space.parse(a) for a in args.arch] + space.sample(args.sample, seed=args.seed)
    if not archs:
        raise ValueError("nothing to measure: give architecture strings or --sample N")
    results = measure_archs(space, archs, _runtime_settings(args), cache=False if args.no_cache else args.cache,
                            progress=not args.no_progress, ray=args.ray is not None,
                            ray_address=None if args.ray in (None, "local") else args.ray, workers=args.ray_workers)
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["arch", "latency_ms"])
            writer.writerows([r.arch, f"{r.latency_ms:.6g}"] for r in results)
    if args.json:
        rows = [{"arch": r.arch, "space": space.name, "cached": r.cached, **r.measurement.to_dict()} for r in results]
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    for r in results:
        m = r.measurement
        print(f"{r.latency_ms:.3f} ms (lowest round's p10; median {m.median_ms:.3f}, p90 {m.p90_ms:.3f}) over "
              f"{m.rounds} x {m.repeats // m.rounds} runs, "
              f"{m.threads} thread(s), batch {m.batch_size}, onnxruntime CPU{' (cached)' if r.cached else ''}"
              + (f"  {r.arch}" if len(results) > 1 else ""))
    return 0


def _devices(text: str):
    """Lightning's devices: a count, or a spec such as "auto" or "0,1"."""
    return int(text) if str(text).isdigit() else text


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_pretrain(args) -> int:
    import dataclasses
    import shlex

    from predictors.fit import ACCURACY_FIT, LATENCY_FIT, for_table

    from .data import load_table
    from .bundle import Bundle
    from .pretrain import pretrain_bundle
    from .spaces import get_space

    space = get_space(args.space)
    archs = len(load_table(space.name, args.data))
    lat_cfg = for_table(LATENCY_FIT, archs, space=space)
    acc_cfg = for_table(ACCURACY_FIT, archs, "accuracy", space=space)
    for flag, value in (("--latency-epochs", args.latency_epochs), ("--accuracy-epochs", args.accuracy_epochs)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.latency_epochs:
        lat_cfg = dataclasses.replace(lat_cfg, epochs=args.latency_epochs)
    if args.accuracy_epochs:
        acc_cfg = dataclasses.replace(acc_cfg, epochs=args.accuracy_epochs)
    if args.encoder:
        from graph_encoders import ENCODER_NAMES

        if args.encoder not in ENCODER_NAMES:
            raise UnknownNameError("graph encoder", args.encoder, ENCODER_NAMES)
        lat_cfg = dataclasses.replace(lat_cfg, encoder=args.encoder)
        acc_cfg = dataclasses.replace(acc_cfg, encoder=args.encoder)
    from generators.model import GeneratorConfig

    gen_cfg = GeneratorConfig()
    if args.generator_epochs is not None:
        if args.generator_epochs < 1:
            raise ValueError(f"--generator-epochs must be >= 1, got {args.generator_epochs}")
        gen_cfg = dataclasses.replace(gen_cfg, epochs=args.generator_epochs)
    out = Path(args.out or f"{space.name}-bundle.pt")
    command = "archgen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["pretrain"] else ""
    bundle = pretrain_bundle(
        space.name, args.data, devices=_names(args.devices), exclude_devices=_names(args.exclude_devices) or [],
        tasks=_names(args.tasks), exclude_tasks=_names(args.exclude_tasks) or [],
        latency_config=lat_cfg, accuracy_config=acc_cfg, generators=_names(args.generators) or [],
        generator_config=gen_cfg, seed=args.seed, use_wandb=args.wandb,
        run_dir=args.run_dir, progress=not args.no_progress,
        checkpoint_dir=Path(args.run_dir) / "checkpoints" if args.checkpoints else None, command=command,
        reuse_latency=Bundle.load(args.reuse_latency).latency if args.reuse_latency else None,
        trainer_options={"accelerator": args.accelerator, "devices": _devices(args.trainer_devices), "strategy": args.strategy,
                         "num_nodes": args.num_nodes},
    )
    bundle.save(out)
    meta = bundle.meta
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(meta['devices'])} devices, "
          f"tasks {', '.join(meta['tasks'])}, generators {', '.join(meta['generators']) or 'none'}; "
          f"trained in {meta['train_seconds']} s")
    return 0


def cmd_train(args) -> int:
    from .spaces import get_space
    from .training import train_candidates

    space = get_space(args.space)
    network = {k: v for k, v in (("channels", args.channels), ("cells_per_stage", args.cells_per_stage)) if v is not None}
    results = train_candidates(
        space, [space.parse(a) for a in args.arch], args.data, run_dir=args.run_dir, ray=args.ray is not None,
        ray_address=None if args.ray in (None, "local") else args.ray, workers=args.ray_workers,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, network=network,
        use_wandb=args.wandb, accelerator=args.accelerator, devices=_devices(args.devices), strategy=args.strategy,
        progress=not args.no_progress and len(args.arch) == 1,
    )
    if args.json:
        rows = [r.to_dict() for r in results]
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    for r in results:
        print(f"test accuracy {r.test_accuracy:.2f}% (best validation {r.val_accuracy:.2f}%) after "
              f"{r.epochs} epochs, {r.seconds:.1f} s ({r.seconds_per_epoch:.1f} s/epoch) on {r.dataset}; "
              f"checkpoint {r.checkpoint}" + (f"  {r.arch}" if len(results) > 1 else ""))
    return 0


def read_calibration(path: str) -> tuple[list[str], list[float]]:
    """``(archs, latencies_ms)`` from a CSV with columns ``arch`` and ``latency_ms``."""
    import csv

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"calibration file {path!r} does not exist")
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


def cmd_generate(args) -> int:
    import warnings

    from .api import ArchGen
    from .errors import GenerationWarning

    ag = ArchGen.pretrained(args.space, path=args.bundle, data=args.data)
    if args.device == "local" and not args.calibration and "local" not in ag.devices():
        cal = ag.calibrate_local(args.local_k, cache=args.cache)
        print(f"calibrated 'local' (this machine, onnxruntime CPU, 1 thread) from {cal.k} measurements",
              file=sys.stderr)
    if args.calibration:
        if args.device is None:
            raise ValueError("--calibration needs --device NAME for the new device")
        archs, values = read_calibration(args.calibration)
        cal = ag.calibrate_device(args.device, archs, values)
        print(f"calibrated {args.device!r} from {cal.k} measurements in {cal.seconds * 1000:.0f} ms "
              f"(rank agreement on them {cal.fit_spearman:.2f})", file=sys.stderr)
    task = args.task
    if task is None:
        if len(ag.tasks()) != 1:
            raise ValueError(f"give --task: one of {', '.join(ag.tasks())}")
        task = ag.tasks()[0]
    if args.measurements and args.device != "local":
        raise ValueError("--measurements measures on this machine: it needs --device local "
                         "(the Python API's generate(measure=...) takes any device)")
    measure = ag.local_measure(cache=args.cache) if args.measurements else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenerationWarning)
        cands = ag.generate(task, args.device, args.max_latency_ms, n=args.n, generator=args.generator,
                            seed=args.seed, samples=args.samples, strength=args.strength, proposals=args.proposals,
                            margin=args.margin, measure=measure, measurements=args.measurements,
                            wandb=args.wandb, run_dir=args.run_dir)
    for w in caught:
        print(f"archgen generate: note: {w.message}", file=sys.stderr)
    if note := ag.device_note(args.device):
        print(f"archgen generate: note: --device {args.device} is in {note}", file=sys.stderr)
    report = cands.report
    result = {"request": report.request, "settings": report.settings, "metrics": report.metrics(),
              "candidates": [c.to_dict() for c in cands]}
    if note:
        result["device_note"] = note
    measured = [c.measured_latency_ms for c in cands] if args.measurements else None
    if args.verify:
        measured = [m.latency_ms for m in ag.measure([c.arch for c in cands], cache=args.cache)]
        for row, ms in zip(result["candidates"], measured):
            row["measured_latency_ms_here"] = ms
    if args.out:
        from .experiment import plot_generation

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for rank, c in enumerate(cands, start=1):
            c.to_onnx(out / f"candidate-{rank}.onnx", num_classes=args.num_classes)
            result["candidates"][rank - 1]["onnx"] = f"candidate-{rank}.onnx"
        if args.device is not None:
            plot_generation(ag, cands, out / "accuracy_vs_latency.png")
        (out / "candidates.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(_candidate_table(cands, measured))
    m = report.metrics()
    novelty = "-" if m["novelty"] is None else f"{m['novelty']:.0%}"
    line = (f"{report.samples} samples in {m['seconds']:.2f} s: validity {m['validity']:.0%}, uniqueness "
            f"{m['uniqueness']:.0%}, novelty {novelty}, within budget (predicted) {m['feasible_share']:.0%}")
    if m["measurements"]:
        line += f"; {m['measurements']} candidates measured here while generating"
    if m["regret"] is not None:
        line += f"; table oracle {m['oracle_accuracy']:.2f}%, regret {m['regret']:.2f} points"
    print(line)
    if args.out:
        print(f"wrote {args.out}/candidates.json, {len(cands)} ONNX files" +
              (" and accuracy_vs_latency.png" if args.device is not None else ""))
    return 0


def _candidate_table(cands, measured=None) -> str:
    def fmt(value, std=None, digits=2):
        if value is None:
            return "-"
        return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    from .complexity import PROXY_TASK

    accuracy = "pred. proxy" if cands.report.request["task"] == PROXY_TASK else "pred. acc %"
    header = ("#", accuracy, "pred. latency ms", "true acc %", "true ms", *(("measured here ms",) if measured else ()),
              "arch")
    rows = [(str(i), fmt(c.predicted_accuracy, c.accuracy_std), fmt(c.predicted_latency_ms, c.latency_std_ms, 3),
             fmt(c.true_accuracy), fmt(c.true_latency_ms, digits=3),
             *((fmt(measured[i - 1], digits=3),) if measured else ()), c.arch) for i, c in enumerate(cands, start=1)]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ArchGenError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"archgen {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
