"""From a module to numbers about real hardware: ONNX export, onnxruntime latency,
parameter and FLOP counts."""

from __future__ import annotations

import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LatencyMeasurement:
    """Latency of one model under onnxruntime on this machine (milliseconds)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    repeats: int
    warmup: int
    threads: int
    batch_size: int

    @property
    def spread_ms(self) -> float:
        """Inter-decile range, a robust spread."""
        return self.p90_ms - self.p10_ms

    def to_dict(self) -> dict:
        return asdict(self)


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
    seed: int = 0,
) -> LatencyMeasurement:
    """Median latency of one inference under onnxruntime on this machine's CPU.

    ``input_shape`` defaults to the model's declared input shape. Warm-up runs are
    discarded; the thread count is fixed so results are comparable across runs.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    session = onnx_session(onnx_path, threads)
    if not session.get_inputs():
        raise ValueError(f"ONNX model {str(onnx_path)!r} has no inputs (constant output); nothing to time")
    model_input = session.get_inputs()[0]
    if input_shape is None:
        declared = model_input.shape
        if not all(isinstance(d, int) for d in declared):
            raise ValueError(f"the model's input shape {declared} has symbolic dims; pass input_shape")
        input_shape = tuple(declared)
    shape = _check_shape(input_shape)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    feed = {model_input.name: x}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    deciles = np.percentile(times, [10, 50, 90])
    return LatencyMeasurement(
        median_ms=float(deciles[1]), p10_ms=float(deciles[0]), p90_ms=float(deciles[2]),
        mean_ms=float(np.mean(times)), std_ms=float(statistics.pstdev(times)),
        repeats=repeats, warmup=warmup, threads=threads, batch_size=shape[0],
    )


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
