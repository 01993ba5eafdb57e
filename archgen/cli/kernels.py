"""``archgen kernels`` and ``archgen calibrate``: kernel-level device profiles
(see :mod:`archgen.kernels` and :mod:`archgen.profiles`).

- ``archgen kernels list`` / ``archgen kernels export DIR``: a space's distinct kernels,
  and one ONNX file per kernel for a device that runs an inference runtime but no Python;
- ``archgen calibrate --device NAME``: add a device from its kernel timings
  (``--kernels``), this machine's (``--profile``), whole-network measurements
  (``--calibration``), or a profile and measurements together. Stored for later calls.
"""

from __future__ import annotations

import json
import sys

from .options import add_command, add_space


def add_parsers(sub) -> None:
    kernels = add_command(sub, "kernels", "list a space's distinct kernels, or export them as ONNX files to time "
                          "on a device", cmd_kernels)
    actions = kernels.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, help in (("list", "list the space's distinct kernels"),
                         ("export", "write one ONNX file per kernel, overhead.onnx, manifest.json and TIMINGS.md")):
        p = add_command(actions, action, help, cmd_kernels)
        if action == "export":
            p.add_argument("folder", metavar="DIR", help="the folder to write")
        add_space(p)
        p.add_argument("--num-classes", type=int, default=None,
                       help="classifier outputs of the head kernel (default: the space's: nb201 10, fbnet 100, "
                            "mbv3 and anb 1000, transnas_micro 47)")
        if action == "export":
            p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = add_command(sub, "calibrate", "add a device from kernel timings, this machine's profile or whole-network "
                    "measurements; stored for later calls", cmd_calibrate, aliases={"timings": "kernels",
                                                                                    "name": "device"},
                    on_interrupt="kernel timings finished so far are kept in the measurement cache")
    add_space(p)
    p.add_argument("--device", default=None,
                   help="name of the device (letters, digits and _.-+@=; default: 'local' with --profile, "
                        "else required)")
    p.add_argument("--kernels", default=None, metavar="TIMINGS.csv",
                   help="kernel timings made on the device: `kernel,ms` lines for the files of "
                        "`archgen kernels export` (see its TIMINGS.md; default: none)")
    p.add_argument("--profile", action="store_true",
                   help="time every distinct kernel on this machine with onnxruntime (cached) instead")
    p.add_argument("--calibration", default=None, metavar="FILE.csv",
                   help="whole-network latencies measured on the device, columns arch,latency_ms: with a profile "
                        "they correct it, alone they calibrate the pretrained prior (default: none)")
    p.add_argument("--threads", type=int, default=1, help="with --profile: onnxruntime intra-op threads")
    p.add_argument("--cache", default=None,
                   help="with --profile: SQLite measurement cache (default: $ARCHGEN_CACHE or "
                        "~/.cache/archgen/measurements.sqlite)")
    p.add_argument("--bundle", default=None, help="bundle made by `archgen pretrain` (default: the embedded one)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def cmd_kernels(args) -> int:
    from ..kernels import export_kernels, space_kernels
    from ..spaces import get_space

    space = get_space(args.space)
    if args.num_classes is not None and args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.action == "list":
        kernels = space_kernels(space, args.num_classes)
        if args.json:
            print(json.dumps({"space": space.name, "kernels": [k.to_dict() for k in kernels]}, indent=2))
        else:
            for k in kernels:
                print(f"{k.key}  {' + '.join('x'.join(map(str, s)) for s in k.input_shapes)}  {k.module}")
            print(f"{len(kernels)} distinct kernels in {space.name}")
        return 0
    done = export_kernels(space, args.folder, num_classes=args.num_classes, progress=not args.no_progress)
    if args.json:
        print(json.dumps({"space": done.space, "kernels": done.kernels, "folder": str(done.folder),
                          "manifest": str(done.manifest)}, indent=2))
    else:
        print(f"wrote {done.kernels} {done.space} kernels to {done.folder} (manifest.json, TIMINGS.md): time each "
              f"file on the device, then `archgen calibrate --space {done.space} --kernels timings.csv "
              "--device NAME`")
    return 0


def cmd_calibrate(args) -> int:
    from ..api import ArchGen
    from .generate import read_calibration

    if args.kernels is not None and args.profile:
        raise ValueError("--kernels and --profile both give the device's kernel profile: choose one")
    if args.kernels is None and not args.profile and args.calibration is None:
        raise ValueError("nothing to calibrate from: give --kernels TIMINGS.csv, --profile or --calibration FILE.csv")
    device = args.device if args.device is not None else "local" if args.profile else None
    if device is None:
        raise ValueError("--device NAME is needed: the name later calls use (`archgen generate --device NAME`)")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    ag = ArchGen.pretrained(args.space, path=args.bundle)
    result: dict = {"space": ag.space.name, "device": device}
    profile = None
    if args.profile:
        profile = ag.profile_local(device, threads=args.threads, cache=args.cache, progress=not args.no_progress)
    elif args.kernels is not None:
        profile = ag.calibrate_kernels(args.kernels, device)
    if profile is not None:
        missing = profile.missing()
        result.update({"kernels": len(profile.kernel_ms), "missing_kernels": len(missing),
                       "overhead_ms": profile.overhead_ms, "source": profile.source})
        print(f"profiled {device!r} from {len(profile.kernel_ms)} kernel timings ({profile.source})"
              + (f"; {len(missing)} kernels missing, e.g. {missing[0]}: networks that need them cannot be "
                 "predicted" if missing else ""), file=sys.stderr)
    if args.calibration is not None:
        archs, values = read_calibration(args.calibration)
        cal = ag.calibrate_device(device, archs, values)
        result.update({"measurements": cal.k, "fit_spearman": cal.fit_spearman})
        print(f"calibrated {device!r} from {cal.k} whole-network measurements"
              + (" on top of its kernel profile" if ag.device_profile(device) is not None else ""),
              file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"stored: `archgen generate --space {ag.space.name} --device {device} --max-latency-ms MS` uses it")
    return 0
