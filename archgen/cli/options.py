"""Options and parsing helpers shared by the ``archgen`` commands."""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option that takes a value says its default: ``(default: X)`` is appended
    unless the help already says it in words (``default:`` given by hand where the
    value alone would not explain it, e.g. "the bundle's task"). Flags are off by default
    and say nothing, and help texts never say a default twice."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.nargs == 0 \
                or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def add_command(sub, name: str, help: str, func, *, aliases: dict[str, str] | None = None,
                on_interrupt: str = "") -> argparse.ArgumentParser:
    """A sub-command whose errors name its flags (``aliases``: API parameter -> this
    command's option dest, where they differ) and whose Ctrl-C says ``on_interrupt``."""
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                       formatter_class=DefaultsFormatter)
    p.set_defaults(func=func, _aliases=aliases or {}, _on_interrupt=on_interrupt)
    return p


def flags_of(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    """``{API parameter name: (flag, metavar)}`` of a command: each option's dest, and
    the command's aliases (``add_command``), so that errors can name flags."""
    flags = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        long = [o for o in action.option_strings if o.startswith("--")]
        metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        flags[action.dest] = ((long or action.option_strings)[0], "" if action.nargs == 0 else metavar)
    for api_name, dest in parser.get_default("_aliases").items():
        if dest in flags:
            flags[api_name] = flags[dest]
    return flags


def add_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="nb201", help="search space name (see `archgen spaces`)")


def add_build(p: argparse.ArgumentParser, num_classes: int | None = None) -> None:
    """``--num-classes`` (None: the space's own classifier width) and ``--batch-size``."""
    p.add_argument("--num-classes", type=int, default=num_classes,
                   help="classifier outputs" + ("" if num_classes is not None else
                                                " (default: the space's: nb201 10, fbnet 100, mbv3 and anb 1000)"))
    p.add_argument("--batch-size", type=int, default=1, help="batch size of the example input")


def add_ray(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run each candidate as a Ray task: on the cluster at ADDRESS, or a local one without it "
                        "(needs `pip install \"archgen[distributed]\"`; default: no Ray, one after another)")
    p.add_argument("--ray-workers", type=int, default=2, help="CPUs of the local Ray cluster")


def add_lightning(p: argparse.ArgumentParser, devices_note: str = "") -> None:
    """Lightning's accelerator, devices (``--trainer-devices`` everywhere: ``--devices``
    names benchmark devices) and strategy."""
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu, gpu or auto")
    p.add_argument("--trainer-devices", default="1", help="Lightning devices per node: a count, or e.g. 0,1 or auto"
                   + devices_note)
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp for several GPUs")


def ray_address(args) -> str | None:
    return None if args.ray in (None, "local") else args.ray


def lightning_devices(text: str):
    """Lightning's devices: a count, or a spec such as "auto" or "0,1"."""
    return int(text) if str(text).isdigit() else text


def names(text: str | None) -> list[str] | None:
    """A comma-separated list (None stays None: "all")."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def input_shape(space, arch: str, batch_size: int) -> tuple[int, ...]:
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    return (batch_size, *space.input_shape_of(arch))


def num_classes(space, value: int | None) -> int:
    """``--num-classes``, or the space's own classifier width."""
    from ..generation import space_classes

    if value is None:
        return space_classes(space)
    if value < 1:
        raise ValueError(f"--num-classes must be >= 1, got {value}")
    return value
