"""Kernel decomposition: a network as the kernels a runtime executes (nn-Meter's idea).

Why: a device's latency for a network is close to the sum of the latencies of its
kernels -- a stem, each cell edge or MBConv block at its shape, each node sum, a head
-- and a space has few distinct kernels (tens to hundreds) where it has billions of
networks. Timing those kernels once (milliseconds each) profiles a device without
any prior learned from other devices (:mod:`archgen.profiles`).

What is a kernel: each network class names its kernel modules (``kernel_types``,
``kernel_names``); the outermost such module met in a forward pass is one kernel,
identified by its configuration (``repr``) and its input shapes. The boundaries are
those of what onnxruntime fuses: a conv with its BN (folded) and activation, an
inverted residual with its residual add, and so on (``tests/test_kernels.py`` checks
that the kernels' optimized onnxruntime graphs hold the whole network's compute nodes).
Decomposing builds the network on PyTorch's ``meta`` device: shapes only, no weights,
a few milliseconds.

The distinct kernels of a space are those of its :meth:`kernel_cover
<archgen.spaces.base.SearchSpace.kernel_cover>` architectures. Where the input
resolution is a choice (``mbv3``: 25 sides), kernels are timed at a few sides and
the others interpolated along pixels within their *family* (same module, same
channels; see :class:`~archgen.profiles.KernelProfile`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import RequestError
from .spaces import get_space

#: the id of the empty model every profile also times: one runtime call's fixed cost,
#: which each kernel timed alone pays and a network pays once
OVERHEAD = "overhead"

#: how kernel timings for a device that cannot run Python come back (see :func:`export_kernels`)
TIMINGS_FORMAT = """\
A timings file is a CSV with a header line `kernel,ms` and one line per kernel:
the kernel id from manifest.json (also the ONNX file's name without .onnx) and its
latency in milliseconds (> 0, batch 1, the runtime and thread count you will deploy
with; a median over many runs after a warm-up). Feed each input of a file random
values of its declared shape. Lines starting with # are comments. Time every file
of the folder, `overhead.onnx` too: an empty model, the runtime's fixed cost of one
call, which every kernel timed alone pays and a whole network pays once. A kernel
left out makes the networks that use it unpredictable (they are named).

    kernel,ms
    overhead,0.004
    ReLUConvBN-16x32x32-1a2b3c4d5e,0.051
"""


@dataclass(frozen=True)
class Kernel:
    """One distinct kernel of a space.

    ``key``: its id (``<Type>-<shape>-<hash>``), unique within its space; ``family``:
    the same module at any input resolution (what :mod:`archgen.profiles` interpolates
    along); ``pixels``: height x width of its first input (1 for a flat input);
    ``module``: the module's configuration (its ``repr`` on one line)."""

    key: str
    kind: str
    input_shapes: tuple[tuple[int, ...], ...]
    family: str
    pixels: int
    module: str

    def to_dict(self) -> dict:
        return {**asdict(self), "input_shapes": [list(s) for s in self.input_shapes]}


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _kernel(module, name: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[Kernel, str]:
    kind = type(module).__name__
    config = " ".join(repr(module).split())
    spatial_free = [s[:2] for s in shapes]
    family = f"{kind}-{_digest(config + repr(spatial_free))}"
    pixels = shapes[0][-1] * shapes[0][-2] if len(shapes[0]) >= 4 else 1
    shape = "x".join(map(str, shapes[0][1:]))
    key = f"{kind}-{shape}-{_digest(config + repr(shapes))}"
    return Kernel(key, kind, shapes, family, pixels, config), name


def _is_kernel(name: str, module, types: tuple, names: tuple[str, ...]) -> bool:
    return isinstance(module, types) or name in names


def _walk(module, types, names, prefix: str = ""):
    """The outermost kernel modules under ``module``, with their qualified names."""
    for child_name, child in module.named_children():
        name = f"{prefix}{child_name}"
        if _is_kernel(name, child, types, names):
            yield name, child
        else:
            yield from _walk(child, types, names, name + ".")


#: kernel key -> output shape, so a kernel seen before is not run again (meta tensors
#: go through Python decompositions: running a block costs milliseconds, skipping it microseconds)
_OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {}


def _tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def trace_kernels(module, input_shape: Sequence[int]) -> list[tuple[Kernel, str]]:
    """The kernels ``module`` runs for one input of ``input_shape`` whose results reach
    its output (a cell node no edge reads is dead code a runtime drops), in order, each
    with its module's qualified name. ``module`` declares its kernels (``kernel_types``,
    ``kernel_names``); build it on the ``meta`` device for shapes alone (a kernel met
    before returns an empty tensor of its known output shape instead of running)."""
    import torch
    from torch.overrides import TorchFunctionMode

    types, names = tuple(getattr(module, "kernel_types", ())), tuple(getattr(module, "kernel_names", ()))
    if not types and not names:
        raise ValueError(f"{type(module).__name__} declares no kernel_types or kernel_names")
    ops: list[tuple[list[int], list[int], int | None]] = []  # (input ids, output ids, kernel index or None)
    found: list[tuple[Kernel, str]] = []
    keep: list = []  # every tensor seen stays alive, so that no id is reused during the trace
    inside = [0]

    class Recorder(TorchFunctionMode):
        """Records which tensors each op outside a kernel reads and writes (the glue between kernels)."""

        def __torch_function__(self, func, types_, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not inside[0]:
                ins, outs = _tensors((args, kwargs or {})), _tensors(out)
                passed = {id(t) for t in ins}
                outs = [t for t in outs if id(t) not in passed]  # an input handed back (dropout in eval)
                if outs:
                    keep.extend(ins + outs)
                    ops.append(([id(t) for t in ins], [id(t) for t in outs], None))
            return out

    patched = []
    for name, child in _walk(module, types, names):
        def run(*args, child=child, name=name, original=child.forward):
            kernel, _ = entry = _kernel(child, name, tuple(tuple(a.shape) for a in args))
            shape = _OUTPUT_SHAPES.get(kernel.key)
            inside[0] += 1
            try:
                if shape is None or args[0].device.type != "meta":
                    out = original(*args)
                    _OUTPUT_SHAPES[kernel.key] = tuple(out.shape)
                else:
                    out = torch.empty(shape, device="meta")
            finally:
                inside[0] -= 1
            keep.extend([*args, out])
            ops.append(([id(a) for a in args], [id(out)], len(found)))
            found.append(entry)
            return out
        child.forward = run
        patched.append(child)
    try:
        with torch.no_grad(), Recorder():
            device = next(iter(module.parameters())).device
            output = module.eval()(torch.zeros(*input_shape, device=device))
    finally:
        for child in patched:
            del child.forward
    # keep the kernels the output depends on
    producer = {}
    for i, (_, outs, _) in enumerate(ops):
        for t in outs:
            producer[t] = i
    live, stack, seen = set(), [producer[id(t)] for t in _tensors(output) if id(t) in producer], set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        ins, _, kernel = ops[i]
        if kernel is not None:
            live.add(kernel)
        stack.extend(producer[t] for t in ins if t in producer)
    return [entry for i, entry in enumerate(found) if i in live]


@contextlib.contextmanager
def _without_init():
    """Build modules without initialising their weights (meta tensors have no values,
    and initialisers on them cost more than building the whole network)."""
    import torch

    saved = {n: getattr(torch.nn.init, n) for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")}
    try:
        for n in saved:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


@functools.lru_cache(maxsize=65536)
def _decompose(space_name: str, arch: str, num_classes: int) -> tuple[tuple[Kernel, str], ...]:
    space = get_space(space_name)
    with _without_init():
        module = space.to_module(arch, num_classes=num_classes)
    return tuple(trace_kernels(module, (1, *space.input_shape_of(arch))))


def decompose(space, arch: str, num_classes: int | None = None) -> list[Kernel]:
    """The kernels (with repeats, in execution order) of ``arch``'s network with
    ``num_classes`` outputs (default: the space's). Memoised: about 2-20 ms the first time."""
    space = get_space(space)
    arch = space.coerce(arch)
    classes = _num_classes(space, num_classes)
    return [k for k, _ in _decompose(space.name, arch, classes)]


def _num_classes(space, num_classes: int | None) -> int:
    import inspect

    if num_classes is not None:
        return int(num_classes)
    return int(inspect.signature(space.to_module).parameters["num_classes"].default)


def kernel_counts(space, arch: str, num_classes: int | None = None) -> Counter:
    """How often ``arch`` runs each kernel: ``{key: count}``."""
    return Counter(k.key for k in decompose(space, arch, num_classes))


def space_kernels(space, num_classes: int | None = None) -> list[Kernel]:
    """The distinct kernels of a space: those of its :meth:`kernel_cover` architectures,
    in first-seen order."""
    space = get_space(space)
    seen: dict[str, Kernel] = {}
    for arch in space.kernel_cover():
        for k in decompose(space, arch, num_classes):
            seen.setdefault(k.key, k)
    return list(seen.values())


def kernel_modules(space, keys: Sequence[str] | None = None, num_classes: int | None = None):
    """Real (CPU, eval) modules of the space's kernels ``keys`` (default all), built
    from the cover architectures that contain them: yields ``(kernel, module)``."""
    import torch

    space = get_space(space)
    classes = _num_classes(space, num_classes)
    wanted = None if keys is None else set(keys)
    done: set[str] = set()
    for arch in space.kernel_cover():
        traced = _decompose(space.name, space.coerce(arch), classes)
        new = [(k, name) for k, name in traced if k.key not in done and (wanted is None or k.key in wanted)]
        if not new:
            continue
        torch.manual_seed(0)
        network = space.to_module(arch, num_classes=classes).eval()
        for k, name in new:
            if k.key in done:
                continue
            done.add(k.key)
            yield k, network.get_submodule(name)
    if wanted is not None and wanted - done:
        missing = sorted(wanted - done)
        raise RequestError(f"{len(missing)} kernel(s) are not kernels of the {space.name} space, e.g. {missing[0]!r}")


def overhead_kernel(space) -> Kernel:
    """The empty model of ``space``'s input shape (:data:`OVERHEAD`)."""
    shape = (1, *get_space(space).input_shape)
    return Kernel(OVERHEAD, "Empty", (shape,), OVERHEAD, 1, "x + 0")


def overhead_module():
    """The empty model: what one runtime call costs with nothing to compute."""
    import torch

    class Empty(torch.nn.Module):
        def forward(self, x):
            return x + 0.0  # one trivial node: an empty graph is not a valid ONNX model

    return Empty()


def kernel_to_onnx(module, kernel: Kernel, path: str | os.PathLike, opset: int = 17) -> Path:
    """Export one kernel with inputs ``input0``, ``input1``, ... of its input shapes
    (written to a temporary name first, so a failed export leaves nothing)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    inputs = tuple(torch.randn(*s) for s in kernel.input_shapes)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), inputs, str(tmp), input_names=[f"input{i}" for i in range(len(inputs))],
                              output_names=["output"], opset_version=opset, dynamo=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


@dataclass(frozen=True)
class KernelExport:
    """What :func:`export_kernels` wrote."""

    folder: Path
    space: str
    kernels: int
    manifest: Path


def export_kernels(space, folder: str | os.PathLike, *, num_classes: int | None = None,
                   progress: bool = True) -> KernelExport:
    """Write one ONNX file per distinct kernel of ``space`` (``<kernel id>.onnx``), the
    empty model (``overhead.onnx``, :data:`OVERHEAD`), a ``manifest.json`` (space, kernel ids, input shapes, module configurations) and a
    ``TIMINGS.md`` describing the timings file to send back (:data:`TIMINGS_FORMAT`):
    what a device that runs an inference runtime but no Python needs to be profiled."""
    from tqdm.auto import tqdm

    space = get_space(space)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RequestError(f"{str(folder)!r} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    kernels = space_kernels(space, num_classes)
    kernel_to_onnx(overhead_module(), overhead_kernel(space), folder / f"{OVERHEAD}.onnx")
    for kernel, module in tqdm(kernel_modules(space, [k.key for k in kernels], num_classes), total=len(kernels),
                               desc=f"exporting {space.name} kernels", unit="kernel", disable=not progress):
        kernel_to_onnx(module, kernel, folder / f"{kernel.key}.onnx")
    manifest = {"space": space.name, "num_classes": _num_classes(space, num_classes), "format": 1,
                "timings": "kernel,ms (see TIMINGS.md)", "overhead": overhead_kernel(space).to_dict(),
                "kernels": [k.to_dict() for k in kernels]}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    (folder / "TIMINGS.md").write_text(f"# Timing the {space.name} kernels\n\n{TIMINGS_FORMAT}")
    return KernelExport(folder, space.name, len(kernels), path)
