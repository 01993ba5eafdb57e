"""Device profiles: the latency of every distinct kernel of a space on one device.

A profile predicts a network's latency as the sum of its kernels' latencies
(:mod:`archgen.kernels`), with no prior from other devices: nn-Meter's idea, which
helps most where a device is unlike the benchmark devices. It comes from this
machine (:func:`measure_profile`, behind ``ArchGen.profile_local()``) or from a
timings file made on a device that cannot run Python (:func:`read_timings`, behind
``archgen calibrate --kernels``).

Every kernel timed alone includes the runtime's fixed cost of one call (a session
run); inside a network that cost is paid once. A profile therefore holds that cost
(``overhead_ms``: the ``overhead`` kernel, an empty model) and subtracts it from each
kernel, adding it back once per network. Kernels at an input side the profile lacks
(``mbv3`` has 25 sides, its kernels are timed at 4) are interpolated linearly in
pixels between the nearest timed sides of the same module.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import RequestError
from .kernels import OVERHEAD, Kernel, decompose, kernel_modules, kernel_to_onnx, overhead_kernel, overhead_module, space_kernels
from .spaces import get_space
from .validation import quote

#: header of a timings file (see :data:`archgen.kernels.TIMINGS_FORMAT`)
TIMINGS_HEADER = ("kernel", "ms")


class ProfileError(RequestError):
    """A timings file or stored profile that cannot be used, naming the line or field."""


class ProfileWarning(UserWarning):
    """Some architectures could not be predicted from a partial profile (they are NaN)."""


class MissingKernelsError(ProfileError):
    """A network needs kernels its device profile lacks (a partial timings file)."""


@dataclass(frozen=True)
class KernelProfile:
    """The latency (ms) of each timed kernel of ``space`` on one device.

    ``overhead_ms``: the fixed cost of one runtime call, in every kernel timing (0 where
    unknown). ``source``: ``"measured on <host>"`` or the timings file's name;
    ``machine``: :func:`~archgen.measurements.machine_id` where measured here."""

    space: str
    kernel_ms: dict[str, float]
    overhead_ms: float = 0.0
    source: str = ""
    machine: str | None = None
    settings: dict | None = None
    _families: dict = field(default=None, init=False, repr=False, compare=False)

    # -- which kernels ---------------------------------------------------------------
    def missing(self, kernels: Sequence[Kernel] | None = None) -> list[str]:
        """The kernels of the space (or of ``kernels``) this profile can say nothing about:
        not timed, and no timed kernel of the same module at another input side."""
        kernels = space_kernels(self.space) if kernels is None else kernels
        return [k.key for k in kernels if self._ms(k) is None]

    def _family_points(self) -> dict[str, list[tuple[int, float]]]:
        if self._families is None:
            points: dict[str, list[tuple[int, float]]] = {}
            for k in space_kernels(self.space):
                if k.key in self.kernel_ms:
                    points.setdefault(k.family, []).append(
                        (k.pixels, max(self.kernel_ms[k.key] - self.overhead_ms, 0.0)))
            object.__setattr__(self, "_families", {f: sorted(p) for f, p in points.items()})
        return self._families

    def _ms(self, kernel: Kernel) -> float | None:
        """``kernel``'s latency net of the call overhead: timed, or interpolated along pixels."""
        if kernel.key in self.kernel_ms:  # a tiny kernel may time below the empty model: it costs ~0
            return max(self.kernel_ms[kernel.key] - self.overhead_ms, 0.0)
        points = self._family_points().get(kernel.family)
        if not points:
            return None
        if len(points) == 1:  # one side timed: scale with the pixels
            pixels, ms = points[0]
            return ms * kernel.pixels / pixels
        x = np.array([p for p, _ in points], dtype=float)
        y = np.array([m for _, m in points], dtype=float)
        if kernel.pixels <= x[0]:
            i = 0
        elif kernel.pixels >= x[-1]:
            i = len(x) - 2
        else:
            i = int(np.searchsorted(x, kernel.pixels)) - 1
        slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        return float(max(y[i] + slope * (kernel.pixels - x[i]), 0.0))

    # -- latencies --------------------------------------------------------------------
    def latencies(self, archs: Sequence[str], num_classes: int | None = None) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Each architecture's latency (ms) from its kernels, and for those it cannot
        predict (NaN) the kernels it lacks: ``(latencies, {arch: [missing kernel ids]})``."""
        out = np.empty(len(archs))
        lacking: dict[str, list[str]] = {}
        for i, arch in enumerate(archs):
            total, missing = self.overhead_ms, []
            for k in decompose(self.space, arch, num_classes):
                ms = self._ms(k)
                if ms is None:
                    missing.append(k.key)
                else:
                    total += ms
            if missing:
                lacking[arch] = sorted(set(missing))
            out[i] = np.nan if missing else total
        return out, lacking

    def latency(self, archs: Sequence[str], num_classes: int | None = None) -> np.ndarray:
        """:meth:`latencies`, or a :class:`MissingKernelsError` naming the first
        architecture that needs a kernel this profile lacks, and the kernel."""
        values, lacking = self.latencies(archs, num_classes)
        if lacking:
            arch, kernels = next(iter(lacking.items()))
            more = f" ({len(lacking) - 1} more architectures also lack kernels)" if len(lacking) > 1 else ""
            raise MissingKernelsError(
                f"the {self.space} profile from {self.source or 'a timings file'} lacks {len(kernels)} kernel(s) "
                f"that {quote(arch)} needs, e.g. {kernels[0]}{more}; time them (`archgen kernels export`) and "
                "import the timings again")
        return values

    # -- storage ----------------------------------------------------------------------
    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("_families")
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> KernelProfile:
        """A stored profile, checked field by field (a :class:`ProfileError` naming ``where``)."""
        def bad(why: str) -> ProfileError:
            return ProfileError(f"the kernel profile in {where} is damaged: {why}")

        if not isinstance(data, dict):
            raise bad("not an object")
        space, kernel_ms = data.get("space"), data.get("kernel_ms")
        if not isinstance(space, str):
            raise bad(f"field space must be a string, got {quote(space, 40)}")
        if not isinstance(kernel_ms, dict) or not kernel_ms:
            raise bad("field kernel_ms must be a non-empty object of kernel id -> ms")
        for key, ms in kernel_ms.items():
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
                raise bad(f"kernel {quote(key, 60)} has {quote(ms, 40)} ms (must be a number > 0)")
        overhead = data.get("overhead_ms", 0.0)
        if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not 0 <= overhead < math.inf:
            raise bad(f"field overhead_ms must be a number >= 0, got {quote(overhead, 40)}")
        return cls(space, {str(k): float(v) for k, v in kernel_ms.items()}, float(overhead),
                   str(data.get("source", "")), data.get("machine"), data.get("settings"))


def _known_elsewhere(key: str, space: str) -> str | None:
    """The other space a kernel id belongs to, if any (for the error message)."""
    from .spaces import available_spaces

    for other in available_spaces():
        if other != space and key in {k.key for k in space_kernels(other)}:
            return other
    return None


def read_timings(path: str | os.PathLike, space) -> KernelProfile:
    """A profile of ``space`` from a timings file (``kernel,ms`` CSV, see
    :data:`~archgen.kernels.TIMINGS_FORMAT`). Unknown, duplicate or unparsable lines,
    and times that are not finite numbers > 0, are a :class:`ProfileError` naming the
    line; kernels left out are allowed (a partial profile: see :meth:`KernelProfile.missing`)."""
    space = get_space(space)
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"timings file {str(path)!r} does not exist" if not path.exists()
                           else f"timings file {str(path)!r} is not a file")
    known = {k.key for k in space_kernels(space)} | {OVERHEAD}
    found: dict[str, tuple[float, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"timings file {str(path)!r} cannot be read ({type(exc).__name__}: {exc})") from None
    rows = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ProfileError(f"timings file {path} holds no timings (expected a header `kernel,ms` and one line per kernel)")
    header_line, header = rows[0]
    if tuple(c.strip().lower() for c in next(csv.reader([header]))) != TIMINGS_HEADER:
        raise ProfileError(f"{path}, line {header_line}: expected the header `kernel,ms`, got {quote(header, 80)}")
    for n, line in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([line]))]
        where = f"{path}, line {n}"
        if len(cells) != 2:
            raise ProfileError(f"{where}: expected `kernel id,ms`, got {quote(line, 80)}")
        key, text = cells
        if key not in known:
            other = _known_elsewhere(key, space.name)
            why = (f"a kernel of the {other} space, not of {space.name}: the timings are from another space's export"
                   if other else f"not a kernel of the {space.name} space (see the export's manifest.json)")
            raise ProfileError(f"{where}: kernel {quote(key, 80)} is {why}")
        if key in found:
            raise ProfileError(f"{where}: kernel {key} is timed twice (also on line {found[key][1]}); keep one line")
        try:
            ms = float(text)
        except ValueError:
            raise ProfileError(f"{where}: time {quote(text, 40)} of kernel {key} is not a number (milliseconds)") from None
        if not math.isfinite(ms) or ms <= 0:
            raise ProfileError(f"{where}: time {text} ms of kernel {key} must be a finite number > 0")
        found[key] = (ms, n)
    overhead, overhead_line = found.pop(OVERHEAD, (0.0, 0))
    if not found:
        raise ProfileError(f"timings file {path} times no kernel of the {space.name} space, only the overhead")
    far_below = [k for k, (ms, _) in found.items() if ms < overhead / 2]
    if far_below:  # a tiny kernel within timing noise of the empty model is fine (it costs ~0 inside a network)
        k = far_below[0]
        raise ProfileError(f"{path}, line {found[k][1]}: kernel {k} takes {found[k][0]} ms, less than half the "
                           f"empty model's {overhead} ms (line {overhead_line}); time both the same way")
    return KernelProfile(space.name, {k: ms for k, (ms, _) in found.items()}, overhead, source=path.name)


#: how kernels are timed: interleaved rounds (:func:`~archgen.hardware.measure_latencies`),
#: many short ones, reporting the median, which a retest reproduces (Spearman 0.996 over
#: FBNet's 104 kernels on the busy 2-core VM, against 0.95 for 5 rounds of 10)
KERNEL_ROUNDS, KERNEL_REPEATS, KERNEL_WARMUP = 20, 5, 10
#: kernels timed together (their sessions open at once)
KERNEL_CHUNK = 64


def measure_profile(space, *, threads: int = 1, cache=None, progress: bool = True) -> KernelProfile:
    """Time every distinct kernel of ``space`` on this machine with onnxruntime (``threads``
    intra-op threads) and return the profile. Each kernel's timing is stored in the
    measurement cache (:class:`~archgen.measurements.MeasurementCache`; ``cache`` as for
    :func:`~archgen.measurements.measure_archs`) as soon as its chunk is timed, so a rerun
    times nothing and an interruption loses at most one chunk."""
    from tqdm.auto import tqdm

    from .cache import scratch_folder
    from .hardware import measure_latencies
    from .measurements import MeasurementCache, RuntimeSettings, machine_id

    space = get_space(space)
    settings = RuntimeSettings(threads=threads, warmup=KERNEL_WARMUP, repeats=KERNEL_REPEATS,
                               rounds=KERNEL_ROUNDS).checked()
    kernels = space_kernels(space)
    overhead = overhead_kernel(space)
    store = None if cache is False else cache if isinstance(cache, MeasurementCache) else MeasurementCache(cache)
    machine = machine_id()
    label = f"{space.name}/kernels"
    ms: dict[str, float] = {}
    try:
        todo = []
        for k in [overhead, *kernels]:
            hit = store.get(label, k.key, k.input_shapes[0], settings, machine) if store is not None else None
            if hit is not None:
                ms[k.key] = hit.median_ms
            else:
                todo.append(k)
        modules = {}
        with tempfile.TemporaryDirectory(dir=scratch_folder(), prefix="kernels-") as tmp, \
                tqdm(total=len(todo), desc=f"profiling {space.name} kernels on {platform.node() or 'this machine'}",
                     unit="kernel", disable=not progress) as bar:
            wanted = [k.key for k in todo if k.key != OVERHEAD]
            source = kernel_modules(space, wanted) if wanted else iter(())
            for start in range(0, len(todo), KERNEL_CHUNK):
                chunk = todo[start:start + KERNEL_CHUNK]
                paths = []
                for k in chunk:
                    if k.key == OVERHEAD:
                        module = overhead_module()
                    else:
                        while k.key not in modules:
                            got, module = next(source)
                            modules[got.key] = module
                        module = modules.pop(k.key)
                    paths.append(kernel_to_onnx(module, k, Path(tmp) / f"{k.key}.onnx"))
                timed = measure_latencies(paths, [k.input_shapes[0] for k in chunk], warmup=settings.warmup,
                                          repeats=settings.repeats, rounds=settings.rounds, threads=threads)
                for k, m, p in zip(chunk, timed, paths):
                    ms[k.key] = m.median_ms
                    if store is not None:
                        store.put(label, k.key, k.input_shapes[0], settings, machine, k.key, m)
                    p.unlink()
                bar.update(len(chunk))
    finally:
        if store is not None and not isinstance(cache, MeasurementCache):
            store.close()
    overhead_ms = ms.pop(OVERHEAD)
    return KernelProfile(space.name, ms, overhead_ms, source=f"measured on {platform.node() or 'this machine'}",
                         machine=machine, settings=asdict(settings))
