"""``archgen train`` and ``archgen pretrain``: the commands that run the Lightning Trainer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import DataError, UnknownNameError
from .options import add_command, add_lightning, add_ray, add_space, lightning_devices, names, ray_address


def add_parsers(sub) -> None:
    p = add_command(sub, "pretrain", "pretrain a space's latency and accuracy predictors and generators into a bundle",
                    cmd_pretrain, aliases={"root": "data", "use_wandb": "wandb", "wandb_group": "wandb"},
                    on_interrupt="nothing was written (checkpoints so far are under --run-dir with --checkpoints)")
    add_space(p)
    p.add_argument("--data", default=None, metavar="DIR",
                   help="benchmark data folder (default: $ARCHGEN_DATA, else the packaged tables)")
    p.add_argument("--out", default=None, help="bundle path to write (default: ./<space>-bundle.pt)")
    p.add_argument("--devices", default=None,
                   help="comma-separated benchmark devices to train on (default: all of the table's; "
                        "a table without latencies, transnas_micro: the costs macs, traffic, kernels)")
    p.add_argument("--exclude-devices", default="", help="comma-separated benchmark devices to hold out "
                   "(default: none)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks to train on (default: all of the table's)")
    p.add_argument("--exclude-tasks", default="", help="comma-separated tasks to hold out (default: none)")
    p.add_argument("--latency-epochs", type=int, default=None,
                   help="epochs of the latency predictor (default: the shipped setting for the table's size)")
    p.add_argument("--accuracy-epochs", type=int, default=None,
                   help="epochs of the accuracy predictor (default: the shipped setting for the table's size)")
    p.add_argument("--encoder", default=None,
                   help="graph encoder of both predictors, e.g. gin or dag (default: each predictor's shipped one "
                        "for the space)")
    p.add_argument("--generators", default="diffusion,autoregressive",
                   help="comma-separated generators to train ('' for none)")
    p.add_argument("--generator-epochs", type=int, default=None,
                   help="epochs of each generator (default: 30, generators.model.GeneratorConfig)")
    p.add_argument("--reuse-latency", default=None, metavar="BUNDLE",
                   help="keep the latency predictor of this earlier bundle of the space (default: train one); "
                        "it gains a feature student where the space's requests need one")
    add_lightning(p, "; --devices names benchmark devices here")
    p.add_argument("--num-nodes", type=int, default=1, help="Lightning nodes")
    p.add_argument("--seed", type=int, default=0, help="seed of every model's initialisation and data order")
    p.add_argument("--wandb", action="store_true",
                   help="log to Weights & Biases (offline unless logged in), all runs in one group")
    p.add_argument("--run-dir", default="runs", help="folder for W&B runs and checkpoints")
    p.add_argument("--checkpoints", action="store_true", help="keep Lightning checkpoints under --run-dir")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    p = add_command(sub, "train", "train architectures on real images and report their test accuracy", cmd_train,
                    aliases={"devices": "trainer_devices", "use_wandb": "wandb"},
                    on_interrupt="checkpoints written so far are kept under --run-dir")
    p.add_argument("arch", nargs="+", help="architecture string(s) of the space")
    add_space(p)
    p.add_argument("--data", default="digits",
                   help="'digits' (scikit-learn's bundled digits), an .npz (images, labels) or a class folder")
    p.add_argument("--epochs", type=int, default=15, help="maximum epochs (early stopping on validation accuracy)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine schedule)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and data order")
    p.add_argument("--channels", type=int, default=None,
                   help="network width C (default: 8 for NB201, a quick proxy; the space's own elsewhere)")
    p.add_argument("--cells-per-stage", type=int, default=None,
                   help="NB201 cells per stage N (default: 1, a quick proxy)")
    add_lightning(p)
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline unless logged in)")
    p.add_argument("--run-dir", default="runs",
                   help="folder for checkpoints and W&B runs; each architecture trains in "
                        "RUN_DIR/train/<space>-<hash of the arch>/")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_ray(p)


def format_seconds(seconds: float) -> str:
    """``963.28`` -> ``"16 min 3 s"``; ``4.2`` -> ``"4.2 s"``; ``7380`` -> ``"2 h 3 min"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _table_size(space, data) -> int:
    """Rows of the space's benchmark table, or an error that says where it looked and how to point elsewhere."""
    import os

    from ..data import ENV_VAR, LAYOUT, load_table

    try:
        return len(load_table(space.name, data))
    except DataError as exc:
        where = data if data is not None else os.environ.get(ENV_VAR) or "the packaged tables"
        folder = LAYOUT[space.name].folder if space.name in LAYOUT else space.name
        raise DataError(f"no benchmark table for {space.name} under {where}: pass --data DIR or set {ENV_VAR} "
                        f"to a folder holding {folder}/, or neither to use the packaged tables; {exc}") from None


def cmd_pretrain(args) -> int:
    import dataclasses
    import shlex

    from predictors.fit import ACCURACY_FIT, LATENCY_FIT, for_table

    from ..bundle import Bundle
    from ..pretrain import pretrain_bundle
    from ..spaces import get_space
    from ..training import check_accelerator

    space = get_space(args.space)
    devices = lightning_devices(args.trainer_devices)
    check_accelerator(args.accelerator, devices)
    archs = _table_size(space, args.data)
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
        space.name, args.data, devices=names(args.devices), exclude_devices=names(args.exclude_devices) or [],
        tasks=names(args.tasks), exclude_tasks=names(args.exclude_tasks) or [],
        latency_config=lat_cfg, accuracy_config=acc_cfg, generators=names(args.generators) or [],
        generator_config=gen_cfg, seed=args.seed, use_wandb=args.wandb,
        run_dir=args.run_dir, progress=not args.no_progress,
        checkpoint_dir=Path(args.run_dir) / "checkpoints" if args.checkpoints else None, command=command,
        reuse_latency=Bundle.load(args.reuse_latency).latency if args.reuse_latency else None,
        trainer_options={"accelerator": args.accelerator, "devices": devices, "strategy": args.strategy,
                         "num_nodes": args.num_nodes},
    )
    bundle.save(out)
    meta = bundle.meta
    parts = meta["train_seconds"]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(meta['devices'])} devices, "
          f"tasks {', '.join(meta['tasks'])}, generators {', '.join(meta['generators']) or 'none'}; "
          f"trained in {format_seconds(sum(parts.values()))} "
          f"({', '.join(f'{k} {format_seconds(v)}' for k, v in parts.items())})")
    if args.wandb:
        print(f"W&B runs in group {meta['wandb_group']} under {Path(args.run_dir) / 'wandb'}")
    return 0


def cmd_train(args) -> int:
    from ..spaces import get_space
    from ..training import check_accelerator, train_candidates

    space = get_space(args.space)
    devices = lightning_devices(args.trainer_devices)
    check_accelerator(args.accelerator, devices)
    network = {k: v for k, v in (("channels", args.channels), ("cells_per_stage", args.cells_per_stage)) if v is not None}
    results = train_candidates(
        space, [space.parse(a) for a in args.arch], args.data, run_dir=Path(args.run_dir) / "train",
        ray=args.ray is not None, ray_address=ray_address(args), workers=args.ray_workers,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, network=network,
        use_wandb=args.wandb, accelerator=args.accelerator, devices=devices, strategy=args.strategy,
        progress=not args.no_progress and len(args.arch) == 1,
    )
    if args.json:
        rows = [r.to_dict() for r in results]
        print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
        return 0
    for r in results:
        print(f"test accuracy {r.test_accuracy:.2f}% (best validation {r.val_accuracy:.2f}%) after "
              f"{r.epochs} epochs, {r.seconds:.1f} s ({r.seconds_per_epoch:.1f} s/epoch) on {r.dataset}"
              + (f"  {r.arch}" if len(results) > 1 else ""))
        print(f"  checkpoint {r.checkpoint or 'none'}")
    return 0
