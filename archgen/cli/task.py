"""``archgen learn-task``: learn a new task from your images in one command (choose
architectures, train them briefly, calibrate; see :mod:`archgen.task_learning`)."""

from __future__ import annotations

import json
import math

from .options import add_command, add_ray, add_space, ray_address


def add_parsers(sub) -> None:
    p = add_command(sub, "learn-task", "learn a new task from your images: choose architectures, train them briefly, "
                    "calibrate the task", cmd_learn_task,
                    aliases={"workers": "ray_workers", "ray_address": "ray", "path": "bundle"},
                    on_interrupt="finished proxy runs are kept in the training cache: the same command goes on "
                                 "from there")
    p.add_argument("name", help="name of the task (letters, digits and _.-+@=); then `archgen generate --task NAME`")
    add_space(p)
    p.add_argument("--data", default="digits", metavar="DIR|FILE.npz|digits",
                   help="your images: a folder with one sub-folder per class, an .npz (images, labels), or 'digits' "
                        "(scikit-learn's bundled digits)")
    p.add_argument("-k", type=int, default=20, help="architectures to train (chosen to be informative and diverse)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each proxy run")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (cosine schedule)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and data order")
    p.add_argument("--bundle", default=None, help="bundle made by `archgen pretrain` (default: the embedded one)")
    p.add_argument("--cache", default=None,
                   help="SQLite training cache (default: trainings.sqlite beside the measurement cache, "
                        "~/.cache/archgen/ or $ARCHGEN_CACHE's folder)")
    p.add_argument("--no-cache", action="store_true", help="train everything again and store nothing")
    add_ray(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _seconds(seconds: float) -> str:
    from .train import format_seconds

    return format_seconds(seconds)


def cmd_learn_task(args) -> int:
    from ..api import ArchGen

    if args.no_cache:
        args._on_interrupt = "nothing was stored (--no-cache)"
        if args.cache is not None:
            raise ValueError("--cache and --no-cache exclude each other")
    ag = ArchGen.pretrained(args.space, path=args.bundle)
    learned = ag.learn_task(args.name, args.data, k=args.k, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, seed=args.seed, ray=args.ray is not None, ray_address=ray_address(args),
                            workers=args.ray_workers, progress=not args.no_progress,
                            cache=False if args.no_cache else args.cache)
    if args.json:
        print(json.dumps(learned.to_dict(), indent=2))
        return 0
    s = learned.settings
    print(f"task {learned.name} ({learned.space}) from {learned.data}: {len(learned.archs)} architectures, "
          f"{learned.trained} trained, {learned.cached} cached, in {_seconds(learned.seconds)} "
          f"(proxy runs of {s.epochs} epoch{'s' if s.epochs != 1 else ''}, batch {s.batch_size}, lr {s.lr:g}, "
          f"seed {s.seed})")
    print("test accuracy  architecture")
    for r in learned.results:
        print(f"{r.test_accuracy:12.2f}%  {r.arch}")
    cal = learned.calibration
    rho = "n/a (its predictions tie)" if math.isnan(cal.fit_spearman) else f"{cal.fit_spearman:.3f}"
    print(f"calibrated: fit Spearman {rho} on the {cal.k} proxy runs, noise {cal.noise_std:.2f} points; stored, "
          f"so `archgen generate --space {learned.space} --task {learned.name} --device DEVICE "
          "--max-latency-ms MS` uses it")
    return 0
