"""``archgen calibrations``: list the stored device and task calibrations, or forget one
(see :mod:`archgen.calibrations`)."""

from __future__ import annotations

import json
from pathlib import Path

from .options import add_command


def add_parsers(sub) -> None:
    p = add_command(sub, "calibrations", "list the stored device and task calibrations, or forget one",
                    cmd_calibrations, aliases={"path": "bundle"})
    p.add_argument("--space", default=None,
                   help="search space (default: every space with stored calibrations; with --bundle, its space)")
    p.add_argument("--bundle", default=None,
                   help="judge them against this bundle made by `archgen pretrain` (default: each space's "
                        "embedded one)")
    p.add_argument("--forget", default=None, metavar="NAME",
                   help="remove the stored calibration NAME instead of listing (default: list them)")
    p.add_argument("--kind", default=None, choices=("device", "task"),
                   help="with --forget: device or task (default: whichever NAME is stored as)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_calibrations(args) -> int:
    from ..calibrations import CalibrationStore

    store = CalibrationStore()
    if args.kind is not None and args.forget is None:
        raise ValueError("--kind goes with --forget NAME")
    if args.forget is not None:
        return _forget(store, args)
    infos = _list(store, args)
    if args.json:
        print(json.dumps({"store": str(store.root), "calibrations": [i.to_dict() for i in infos]}, indent=2))
        return 0
    if not infos:
        print(f"no stored calibrations{f' for space {args.space}' if args.space else ''} in {store.root}")
        return 0
    print(calibration_table(infos))
    print(f"{len(infos)} stored in {store.root}; forget one with `archgen calibrations --forget NAME`")
    return 0


def _list(store, args) -> list:
    """Each stored calibration, with its status against the bundle in use (``--bundle``, or
    each space's embedded one), as an :class:`~archgen.api.ArchGen` made with it sees it."""
    import warnings

    from ..api import ArchGen
    from ..calibrations import CalibrationInfo, CalibrationStoreWarning
    from ..spaces import available_spaces, get_space

    with warnings.catch_warnings():  # a damaged file is listed with its reason: no warning as well
        warnings.simplefilter("ignore", CalibrationStoreWarning)
        if args.bundle is not None:
            from ..bundle import Bundle

            bundle = Bundle.load(args.bundle)
            if args.space is not None and get_space(args.space).name != bundle.space:
                raise ValueError(f"--bundle {args.bundle} is for space {bundle.space!r}, not --space {args.space!r}")
            return ArchGen(bundle, bundle_source=str(Path(args.bundle).resolve())).calibrations()
        spaces = [get_space(args.space).name] if args.space is not None else store.spaces()
        infos = []
        for space in spaces:
            if space not in available_spaces():  # a folder this archgen knows no space for
                infos += [CalibrationInfo.of(p, None, f"refused: archgen knows no space {space!r}", space=space)
                          for p in store.files(space)]
            elif store.files(space):
                infos += ArchGen.pretrained(space).calibrations()
    return infos


def _forget(store, args) -> int:
    from ..calibrations import check_name

    name = check_name(args.forget)
    space = None
    if args.space is not None:
        from ..spaces import get_space

        space = get_space(args.space).name
    found = store.find(name, args.kind, space)
    where = f" for space {space}" if space else ""
    if not found:
        raise ValueError(f"no stored calibration {name!r}{where} in {store.root}; `archgen calibrations` lists them")
    if len(found) > 1:
        shown = ", ".join(f"{p.parent.parent.name} {p.parent.name}" for p in found)
        raise ValueError(f"{name!r} is stored several times ({shown}); choose one with --space and --kind")
    path = found[0]
    store.remove(path)
    forgot = {"space": path.parent.parent.name, "kind": path.parent.name, "name": name, "path": str(path)}
    if args.json:
        print(json.dumps({"forgot": forgot}, indent=2))
    else:
        print(f"forgot the stored calibration of {forgot['kind']} {name!r} ({forgot['space']}): removed {path}")
    return 0


def calibration_table(infos) -> str:
    """The stored calibrations as a text table."""
    header = ("space", "kind", "name", "head", "k", "created", "bundle", "status")
    rows = [(i.space, i.kind, i.name, i.head or "-", "-" if i.k is None else str(i.k), i.created or "-",
             i.bundle or "-", i.status) for i in infos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows])
