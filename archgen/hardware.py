"""From a module to numbers about real hardware: ONNX export, onnxruntime latency,
parameter and FLOP counts."""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import MeasurementError


@dataclass(frozen=True)
class LatencyMeasurement:
    """Latency of one model under onnxruntime on this machine (milliseconds).

    The timed runs come in ``rounds`` of ``repeats``; ``median_ms`` ... ``std_ms``
    are over all of them; ``floor_ms``, the lowest round's 10th percentile, is
    what the machine delivers when nothing else disturbs it -- the figure that
    ranks models most repeatably on a shared machine (see :func:`measure_latencies`).
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    repeats: int
    warmup: int
    threads: int
    batch_size: int
    rounds: int = 1
    floor_ms: float | None = None

    @property
    def spread_ms(self) -> float:
        """Inter-decile range, a robust spread."""
        return self.p90_ms - self.p10_ms

    def to_dict(self) -> dict:
        return asdict(self)

    def problems(self) -> list[str]:
        """What makes this measurement unusable, empty when nothing does: a latency
        that is not a finite number > 0 (``std_ms``: >= 0) or a count below its minimum.
        A 0.0 or NaN timing means a broken clock or runtime; stored, it would be
        reused as a latency forever, so nothing with a problem is kept."""
        found = []
        times = {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                 "mean_ms": self.mean_ms, "std_ms": self.std_ms}
        if self.floor_ms is not None:
            times["floor_ms"] = self.floor_ms
        for name, value in times.items():
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and name != "std_ms"):
                found.append(f"{name}={value!r}")
        for name, low in (("repeats", 1), ("warmup", 0), ("threads", 1), ("batch_size", 1), ("rounds", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                found.append(f"{name}={value!r}")
        return found


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be positive ints, e.g. (1, 3, 32, 32); got {input_shape!r}")
    return shape


def to_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    *,
    opset: int = 17,
    dynamo: bool = False,
    check: bool = True,
) -> Path:
    """Export ``module`` (in eval mode) to ``path`` and run ``onnx.checker`` on it.

    The TorchScript exporter (``dynamo=False``) is the default: it takes
    milliseconds per model where the dynamo exporter takes seconds, and the
    models archgen builds are plain static graphs it handles fully.
    Writes to a temporary file first so a failed export never leaves a partial file.
    """
    import onnx

    shape = _check_shape(input_shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    was_training = module.training
    module.eval()
    try:
        example = torch.randn(*shape)
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is deprecated upstream but chosen on purpose (speed)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module, (example,), str(tmp), input_names=["input"], output_names=["output"],
                opset_version=opset, dynamo=dynamo,
            )
        if check:
            onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        module.train(was_training)
        if tmp.exists():
            tmp.unlink()
    return path


def onnx_session(onnx_path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with a fixed intra-op thread count."""
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"ONNX file {str(onnx_path)!r} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def run_onnx(onnx_path: str | os.PathLike, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run an exported model once on ``inputs`` (float32) and return its first output."""
    session = onnx_session(onnx_path, threads)
    if not session.get_inputs():
        raise ValueError(f"ONNX model {str(onnx_path)!r} has no inputs (constant output)")
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(inputs, dtype=np.float32)})[0]


def measure_latency(
    onnx_path: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    *,
    warmup: int = 10,
    repeats: int = 50,
    threads: int = 1,
    rounds: int = 1,
    seed: int = 0,
) -> LatencyMeasurement:
    """Latency of one inference under onnxruntime on this machine's CPU
    (:func:`measure_latencies` of one model)."""
    return measure_latencies([onnx_path], None if input_shape is None else [input_shape], warmup=warmup,
                             repeats=repeats, threads=threads, rounds=rounds, seed=seed)[0]


def measure_latencies(
    onnx_paths: Sequence[str | os.PathLike],
    input_shapes: Sequence[tuple[int, ...]] | None = None,
    *,
    warmup: int = 10,
    repeats: int = 50,
    threads: int = 1,
    rounds: int = 1,
    seed: int = 0,
) -> list[LatencyMeasurement]:
    """Latencies of several models, timed in interleaved rounds.

    Each model is warmed up (``warmup`` discarded runs), then ``rounds`` times in
    turn every model is timed ``repeats`` times. On a shared or virtual machine
    slow spells last seconds: interleaving spreads each model's runs over the
    whole measurement, so a spell slows one of its rounds rather than all of
    them, and the lowest round (``floor_ms``) ranks models far more repeatably
    than one block of runs (on a 2-core VM, 48 FBNet models measured twice
    agreed at Spearman 0.98 with 5 rounds of 10, 0.74 with one block of 50 and
    the median: ``python bench/hardware.py --part retest``).
    ``input_shapes`` default to each model's declared input shape (that of its first
    input; any further inputs take their declared shapes); the thread
    count is fixed so results are comparable across runs. A timing that is not
    finite and > 0 raises :class:`~archgen.errors.MeasurementError` rather than
    being returned (see :meth:`LatencyMeasurement.problems`).
    """
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0), ("rounds", rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if input_shapes is not None and len(input_shapes) != len(onnx_paths):
        raise ValueError(f"got {len(onnx_paths)} ONNX files but {len(input_shapes)} input shapes")
    runs = []  # (session, feed, batch size) per model
    for k, onnx_path in enumerate(onnx_paths):
        session = onnx_session(onnx_path, threads)
        if not session.get_inputs():
            raise ValueError(f"ONNX model {str(onnx_path)!r} has no inputs (constant output); nothing to time")
        model_input = session.get_inputs()[0]
        if input_shapes is None:
            declared = model_input.shape
            if not all(isinstance(d, int) for d in declared):
                raise ValueError(f"the model's input shape {declared} has symbolic dims; pass input_shape")
            shape = _check_shape(declared)
        else:
            shape = _check_shape(input_shapes[k])
        rng = np.random.default_rng(seed)
        feed = {model_input.name: rng.standard_normal(shape).astype(np.float32)}
        for extra in session.get_inputs()[1:]:  # a kernel with several inputs (a node sum): static shapes
            if not all(isinstance(d, int) for d in extra.shape):
                raise ValueError(f"input {extra.name!r} of {str(onnx_path)!r} has symbolic dims {extra.shape}")
            feed[extra.name] = rng.standard_normal(extra.shape).astype(np.float32)
        runs.append((session, feed, shape[0]))
    for session, feed, _ in runs:
        for _ in range(warmup):
            session.run(None, feed)
    times = [[] for _ in runs]  # per model, per round
    for _ in range(rounds):
        for k, (session, feed, _) in enumerate(runs):
            block = []
            for _ in range(repeats):
                start = time.perf_counter()
                session.run(None, feed)
                block.append((time.perf_counter() - start) * 1e3)
            times[k].append(block)
    out = []
    for onnx_path, (_, _, batch), blocks in zip(onnx_paths, runs, times):
        pooled = np.concatenate(blocks)
        deciles = np.percentile(pooled, [10, 50, 90])
        out.append(LatencyMeasurement(
            median_ms=float(deciles[1]), p10_ms=float(deciles[0]), p90_ms=float(deciles[2]),
            mean_ms=float(pooled.mean()),
            # pstdev fails on NaN rather than returning it; a NaN timing is reported below
            std_ms=float(statistics.pstdev(pooled.tolist())) if np.isfinite(pooled).all() else math.nan,
            repeats=repeats * rounds, warmup=warmup, threads=threads, batch_size=batch, rounds=rounds,
            floor_ms=float(min(np.percentile(b, 10) for b in blocks)),
        ))
        if out[-1].problems():
            raise MeasurementError(
                f"onnxruntime timing of {str(onnx_path)!r} came out unusable ({', '.join(out[-1].problems())}): "
                "the clock or the runtime misbehaved; nothing was kept")
    return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Floating-point operations of one forward pass (PyTorch's FlopCounterMode:
    2 per multiply-accumulate of convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = _check_shape(input_shape)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(*shape))
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())
