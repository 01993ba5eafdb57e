"""Errors of the Python API worded for the command line: API parameter names -> flags.

The API's messages name the parameter a bad value came from (``max_latency_ms must
be ...``, ``pass device=...``); the command line has no parameters, only flags. Rather
than each command catching and rewording each message, one translation applies to
every message, using the command's own options (:func:`~archgen.cli.options.flags_of`).
A name is translated only where a message uses it as a parameter, never in prose:

- ``name=value`` / ``name=...`` / ``name=``  -> ``--flag value`` / ``--flag METAVAR`` / ``--flag``
- a snake_case name anywhere (``max_latency_ms``: never an English word)
- a name that opens the message or a clause, before ``must``/``needs``/``is``/``(``
- a name followed by its value in parentheses: ``n (20)``
"""

from __future__ import annotations

import re

_NAME = r"(?<![\w\-'\"./])([A-Za-z_]\w*)"
_ASSIGN = re.compile(_NAME + r"=(?:'([^']*)'|\"([^\"]*)\"|(\.\.\.)|([^\s,;:)]+))?")
_SNAKE = re.compile(_NAME + r"(?![\w'\"=])")
_SUBJECT = re.compile(r"(^|; )([A-Za-z_]\w*)(?= (?:must|needs|is|has|\())")
_VALUE = re.compile(_NAME + r"(?= \(-?\d[\d.,]*\))")


def speak_cli(message: str, flags: dict[str, tuple[str, str]]) -> str:
    """``message`` with the API parameter names of ``flags`` (``{name: (flag, metavar)}``) as flags."""

    def assign(m: re.Match) -> str:
        name = m.group(1)
        if name not in flags:
            return m.group(0)
        flag, metavar = flags[name]
        quoted = m.group(2) if m.group(2) is not None else m.group(3)
        if quoted is not None:
            value = quoted
        elif m.group(4):
            value = metavar
        else:
            value = m.group(5) or ""
        return f"{flag} {value}" if value else flag

    def snake(m: re.Match) -> str:
        name = m.group(1)
        return flags[name][0] if "_" in name and name in flags else m.group(0)

    def subject(m: re.Match) -> str:
        name = m.group(2)
        return m.group(1) + (flags[name][0] if name in flags else name)

    def valued(m: re.Match) -> str:
        name = m.group(1)
        return flags[name][0] if name in flags else m.group(0)

    message = _ASSIGN.sub(assign, message)
    message = _SNAKE.sub(snake, message)
    message = _SUBJECT.sub(subject, message)
    return _VALUE.sub(valued, message)
