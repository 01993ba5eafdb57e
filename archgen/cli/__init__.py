"""The ``archgen`` command: one module per group of sub-commands.

- :mod:`~archgen.cli.inspect`: ``spaces``, ``show``, ``export``
- :mod:`~archgen.cli.measure`: ``measure``
- :mod:`~archgen.cli.train`: ``pretrain``, ``train``
- :mod:`~archgen.cli.generate`: ``generate``
- :mod:`~archgen.cli.calibrations`: ``calibrations``
- :mod:`~archgen.cli.task`: ``learn-task``
- :mod:`~archgen.cli.kernels`: ``kernels``, ``calibrate``

:func:`main` turns every error a user can cause into one line that names the
command's flags (:mod:`~archgen.cli.messages`), and Ctrl-C into one line and exit 130.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import ArchGenError
from . import calibrations, generate, inspect, kernels, measure, task, train
from .generate import read_calibration
from .messages import speak_cli
from .options import DefaultsFormatter, flags_of

__all__ = ["build_parser", "main", "read_calibration"]

#: exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 130


def version() -> str:
    """The installed distribution's version (the package's own where it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("archgen")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archgen",
        description="Design neural networks for a device and latency budget.",
        formatter_class=DefaultsFormatter,
    )
    parser.add_argument("--version", action="version", version=f"archgen {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (inspect, measure, train, generate, calibrations, task, kernels):
        group.add_parsers(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # warnings as one line each, like errors (Python's default adds the source line that warned)
    python_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *_, **__: f"archgen {args.command}: warning: {message}\n"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        note = getattr(args, "_on_interrupt", "")
        print(f"archgen {args.command}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr)
        return INTERRUPTED
    except (ArchGenError, ValueError, FileNotFoundError, KeyError) as exc:
        plain_key = isinstance(exc, KeyError) and not isinstance(exc, ArchGenError) and exc.args
        message = str(exc.args[0]) if plain_key else str(exc)
        message = speak_cli(message, flags_of(_subparser(parser, args.command)))
        print(f"archgen {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = python_format
