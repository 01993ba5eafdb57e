"""The ``archgen`` command."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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

    p = sub.add_parser("show", help="print an architecture's graph, parameters and FLOPs")
    p.add_argument("arch", help="architecture string of the space")
    _add_space(p)
    _add_build(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="build an architecture and export it to ONNX")
    p.add_argument("arch", help="architecture string of the space")
    p.add_argument("out", help="output .onnx path")
    _add_space(p)
    _add_build(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("measure", help="measure an architecture's onnxruntime latency on this machine")
    p.add_argument("arch", help="architecture string of the space")
    _add_space(p)
    _add_build(p)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="discarded warm-up runs (default 10)")
    p.add_argument("--repeats", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("pretrain", help="pretrain the latency and accuracy predictors of a space into a bundle")
    _add_space(p)
    p.add_argument("--data", default=None, help="benchmark data folder (default: $ARCHGEN_DATA)")
    p.add_argument("--out", default=None, help="bundle path to write (default: ./<space>-bundle.pt)")
    p.add_argument("--devices", default=None, help="comma-separated devices to train on (default: all)")
    p.add_argument("--exclude-devices", default="", help="comma-separated devices to hold out")
    p.add_argument("--tasks", default=None, help="comma-separated tasks to train on (default: all)")
    p.add_argument("--exclude-tasks", default="", help="comma-separated tasks to hold out")
    p.add_argument("--latency-epochs", type=int, default=None, help="epochs of the latency predictor")
    p.add_argument("--accuracy-epochs", type=int, default=None, help="epochs of the accuracy predictor")
    p.add_argument("--encoder", default=None, help="graph encoder of both predictors: gin (default) or dag")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline unless logged in)")
    p.add_argument("--run-dir", default="runs", help="folder for W&B runs and checkpoints (default ./runs)")
    p.add_argument("--checkpoints", action="store_true", help="keep Lightning checkpoints under --run-dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=cmd_pretrain)
    return parser


def _input_shape(space, batch_size: int) -> tuple[int, ...]:
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    return (batch_size, *space.input_shape)


def cmd_spaces(args) -> int:
    from .spaces import available_spaces, get_space

    for name in available_spaces():
        space = get_space(name)
        size = f"{space.size:,} architectures" if space.size else "not enumerable"
        doc = (type(space).__doc__ or "").strip().splitlines()[0]
        print(f"{name:<8} {size:<24} {doc}")
    return 0


def cmd_show(args) -> int:
    from .hardware import count_flops, count_parameters
    from .spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    graph = space.to_graph(arch)
    module = space.to_module(arch, num_classes=args.num_classes)
    shape = _input_shape(space, args.batch_size)
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
    path = to_onnx(module, args.out, _input_shape(space, args.batch_size))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def cmd_measure(args) -> int:
    from .hardware import measure_latency, to_onnx
    from .spaces import get_space

    space = get_space(args.space)
    arch = space.parse(args.arch)
    module = space.to_module(arch, num_classes=args.num_classes)
    shape = _input_shape(space, args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = to_onnx(module, Path(tmp) / "model.onnx", shape)
        m = measure_latency(path, shape, warmup=args.warmup, repeats=args.repeats, threads=args.threads)
    if args.json:
        print(json.dumps({"arch": arch, "space": space.name, **m.to_dict()}, indent=2))
    else:
        print(
            f"{m.median_ms:.3f} ms median (p10 {m.p10_ms:.3f}, p90 {m.p90_ms:.3f}) over {m.repeats} runs, "
            f"{m.threads} thread(s), batch {m.batch_size}, onnxruntime CPU"
        )
    return 0


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_pretrain(args) -> int:
    import dataclasses
    import shlex

    from predictors.fit import ACCURACY_FIT, LATENCY_FIT
    from predictors.pretrain import pretrain_bundle

    from .spaces import get_space

    space = get_space(args.space)
    lat_cfg, acc_cfg = LATENCY_FIT, ACCURACY_FIT
    for flag, value in (("--latency-epochs", args.latency_epochs), ("--accuracy-epochs", args.accuracy_epochs)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.latency_epochs:
        lat_cfg = dataclasses.replace(lat_cfg, epochs=args.latency_epochs)
    if args.accuracy_epochs:
        acc_cfg = dataclasses.replace(acc_cfg, epochs=args.accuracy_epochs)
    if args.encoder:
        from graph_encoders import ENCODERS

        if args.encoder not in ENCODERS:
            raise UnknownNameError("graph encoder", args.encoder, ENCODERS)
        lat_cfg = dataclasses.replace(lat_cfg, encoder=args.encoder)
        acc_cfg = dataclasses.replace(acc_cfg, encoder=args.encoder)
    out = Path(args.out or f"{space.name}-bundle.pt")
    command = "archgen " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["pretrain"] else ""
    bundle = pretrain_bundle(
        space.name, args.data, devices=_names(args.devices), exclude_devices=_names(args.exclude_devices) or [],
        tasks=_names(args.tasks), exclude_tasks=_names(args.exclude_tasks) or [],
        latency_config=lat_cfg, accuracy_config=acc_cfg, seed=args.seed, use_wandb=args.wandb,
        run_dir=args.run_dir, progress=not args.no_progress,
        checkpoint_dir=Path(args.run_dir) / "checkpoints" if args.checkpoints else None, command=command,
    )
    bundle.save(out)
    meta = bundle.meta
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(meta['devices'])} devices, "
          f"tasks {', '.join(meta['tasks'])}; trained in {meta['train_seconds']} s")
    return 0


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
