"""``archgen measure``: onnxruntime latencies of architectures on this machine (cached)."""

from __future__ import annotations

import json

from ..validation import MAX_SAMPLE, check_count
from .options import add_build, add_command, add_ray, add_space, ray_address


def add_parsers(sub) -> None:
    p = add_command(sub, "measure", "measure architectures' onnxruntime latency on this machine (cached)",
                    cmd_measure, on_interrupt="measurements finished so far are kept in the cache")
    p.add_argument("arch", nargs="*", help="architecture strings of the space")
    add_space(p)
    # 10 classes, as `--device local` calibration measures: the same cache entries serve both
    add_build(p, num_classes=10)
    p.add_argument("--sample", type=int, default=0, metavar="N", help="also measure N random architectures")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--warmup", type=int, default=10, help="discarded warm-up runs")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per round")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds over the architectures; the lowest round's 10th percentile is the latency")
    p.add_argument("--cache", default=None, help="SQLite measurement cache (default: $ARCHGEN_CACHE or "
                   "~/.cache/archgen/measurements.sqlite)")
    p.add_argument("--no-cache", action="store_true", help="measure everything again and store nothing")
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="also write arch,latency_ms (a --calibration file; default: none)")
    add_ray(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def runtime_settings(args):
    from ..measurements import RuntimeSettings

    return RuntimeSettings(threads=args.threads, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
                           batch_size=args.batch_size, num_classes=args.num_classes).checked()


def cmd_measure(args) -> int:
    from ..measurements import measure_archs
    from ..spaces import get_space

    space = get_space(args.space)
    check_count("--sample", args.sample, minimum=0, maximum=MAX_SAMPLE)
    if args.no_cache:
        args._on_interrupt = "nothing was stored (--no-cache)"
    archs = [space.parse(a) for a in args.arch] + space.sample(args.sample, seed=args.seed)
    if not archs:
        raise ValueError("nothing to measure: give architecture strings or --sample N")
    results = measure_archs(space, archs, runtime_settings(args), cache=False if args.no_cache else args.cache,
                            progress=not args.no_progress, ray=args.ray is not None, ray_address=ray_address(args),
                            workers=args.ray_workers)
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
