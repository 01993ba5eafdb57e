"""The Python API: one object that wires spaces, predictors (and generators) together.

    >>> from archgen import ArchGen
    >>> ag = ArchGen.pretrained("nb201")
    >>> ag.predict_latency(["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"], device="pixel3").mean
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .errors import BundleError, RequestError
from .generation import Candidates, GuidanceSettings
from .graph import ArchGraph
from .spaces import get_space
from .threads import check_threads, torch_threads

ArchLike = str | ArchGraph


def bundled_path(space: str) -> Path:
    """Where the embedded default bundle of ``space`` lives inside the package."""
    return Path(str(resources.files("archgen") / "bundles" / f"{space}.pt"))


class ArchGen:
    """Predict, calibrate and generate in one search space.

    Build it with :meth:`pretrained`; devices and tasks added by calibration
    live in this object and behave exactly like the pretrained ones.
    ``data`` is the benchmark folder used to fill in true metrics of generated
    candidates (default ``$ARCHGEN_DATA``, else the tables packaged with archgen).

    ``threads``: torch intra-op threads while predicting and generating (None:
    torch's setting as it is). One by default, deliberately: the predictors and
    generators are small networks that gain little from more threads, while torch's
    default pool (a thread per core) fights every other busy process for the cores:
    beside two CPU-bound processes on a 2-core machine an FBNet request took 72-105 s
    on two threads, 21-28 s on one (see :mod:`archgen.threads`). The count is restored
    after each call.
    """

    def __init__(self, bundle, data: str | os.PathLike | None = None, threads: int | None = 1):
        self.bundle = bundle
        self.space = get_space(bundle.space)
        if data is not None:  # a folder named on purpose must exist; only the default may be absent
            from .data import data_root

            data_root(data)
        self.data = data
        self.threads = check_threads(threads)

    @classmethod
    def pretrained(cls, space: str = "nb201", path: str | os.PathLike | None = None,
                   data: str | os.PathLike | None = None, threads: int | None = 1) -> ArchGen:
        """The embedded default bundle of ``space`` (no data folder needed), or the
        bundle at ``path`` made by ``archgen pretrain``. ``threads``: see :class:`ArchGen`."""
        from .bundle import Bundle

        name = get_space(space).name
        file = Path(path) if path is not None else bundled_path(name)
        if path is None and not file.is_file():
            raise FileNotFoundError(
                f"no embedded bundle for space {name!r} at {file}; create one with "
                f"`archgen pretrain --space {name} --out {file}`"
            )
        threads = check_threads(threads)
        bundle = Bundle.load(file)
        if bundle.space != name:
            raise BundleError(f"bundle {file} is for space {bundle.space!r}, not {name!r}")
        return cls(bundle, data, threads)

    # -- names -------------------------------------------------------------------
    def devices(self) -> list[str]:
        """Pretrained and calibrated device names."""
        return self.bundle.latency.targets

    def tasks(self) -> list[str]:
        """Pretrained and calibrated task names."""
        return self.bundle.accuracy.targets

    def device_note(self, device: str) -> str:
        """What ``device``'s milliseconds mean, where its table says (``anb``'s
        ``*_per_image`` devices: 1000 / measured throughput, not batch-1 latency); "" otherwise."""
        return self.bundle.meta.get("device_notes", {}).get(device, "")

    def generators(self) -> list[str]:
        """Names of the bundle's generators, and ``"random"`` (uniform sampling, a baseline)."""
        from .generation import RANDOM

        return [*self.bundle.generators, RANDOM]

    # -- calibration -------------------------------------------------------------------
    def calibrate_device(self, name: str, archs: Sequence[ArchLike], latencies_ms: Sequence[float], *,
                         replace: bool = False):
        """Add device ``name`` from measured latencies (ms) of k >= 2 architectures
        (about 10 is enough). Returns a :class:`~predictors.predictor.Calibration`."""
        return self.bundle.latency.calibrate(name, archs, latencies_ms, replace=replace)

    def calibrate_task(self, name: str, archs: Sequence[ArchLike], accuracies: Sequence[float], *,
                       replace: bool = False, units: str = "percent"):
        """Add task ``name`` from the accuracies of k >= 2 trained architectures (about 20).

        ``units``: ``"percent"`` (values in [0, 100]) or ``"fraction"`` (values in [0, 1],
        multiplied by 100). Values outside that range, not finite or all equal, and values
        all within [0, 1] read as percent, are a :class:`~archgen.errors.RequestError`
        naming the value and its position: predictions are clipped to [0, 100], so a wrong
        scale would otherwise calibrate silently and lose the ranking."""
        from predictors.calibration import check_accuracies

        percent = check_accuracies(accuracies, units)
        return self.bundle.accuracy.calibrate(name, archs, percent, replace=replace)

    def calibrate_local(self, k: int = 10, *, name: str = "local", seed: int = 0, settings=None,
                        cache=None, progress: bool = True, replace: bool = True):
        """Measure ``k`` random architectures on this machine with onnxruntime (see
        :func:`~archgen.measurements.measure_archs`; cached) and calibrate device
        ``name`` from them; then ``generate(device="local", ...)`` works."""
        from .measurements import RuntimeSettings, measure_archs

        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise RequestError(f"k must be an int >= 2, got {k!r}")
        archs = self.space.sample(k, seed=seed)
        measured = measure_archs(self.space, archs, settings or RuntimeSettings(), cache=cache, progress=progress)
        return self.calibrate_device(name, archs, [m.latency_ms for m in measured], replace=replace)

    def measure(self, archs: Sequence[ArchLike], *, settings=None, cache=None, progress: bool = True):
        """Measured onnxruntime latencies of ``archs`` on this machine (a list of
        :class:`~archgen.measurements.ArchMeasurement`, in order; cached)."""
        from .measurements import RuntimeSettings, measure_archs

        return measure_archs(self.space, archs, settings or RuntimeSettings(), cache=cache, progress=progress)

    def local_measure(self, *, settings=None, cache=None):
        """``measure`` for ``generate(device="local", measurements=...)``: arch
        strings -> latencies (ms) measured here with onnxruntime (:meth:`measure`, cached)."""
        def measure(archs):
            return [m.latency_ms for m in self.measure(archs, settings=settings, cache=cache, progress=False)]

        return measure

    @property
    def scores_choices(self) -> bool:
        """Whether both predictors score option vectors directly (thousands of
        proposals a second; see :mod:`graph_encoders.choices`)."""
        return self.bundle.accuracy.reads_choices and self.bundle.latency.reads_choices

    def task_domain(self, task: str) -> dict[str, str]:
        """The decisions ``task`` was learned with only, as ``{"slot N": option}``
        (empty: anywhere in the space); generation keeps them, prediction outside them is an error."""
        domain = self.bundle.accuracy.domain(task)
        return {f"slot {s}": self.space.decisions.options[s][o] for s, o in domain.items()}

    # -- prediction ----------------------------------------------------------------------
    def predict_latency(self, archs: Sequence[ArchLike], device: str):
        """Latency (ms) on ``device``: a :class:`~predictors.predictor.Prediction`
        with ``.mean`` and ``.std`` arrays (``np.asarray`` gives the means)."""
        with torch_threads(self.threads):
            return self.bundle.latency.predict(archs, device)

    def predict_accuracy(self, archs: Sequence[ArchLike], task: str):
        """Accuracy (%) on ``task``, as a :class:`~predictors.predictor.Prediction`."""
        with torch_threads(self.threads):
            return self.bundle.accuracy.predict(archs, task)

    # -- generation ----------------------------------------------------------------------
    def generate(
        self,
        task: str | None = None,
        device: str | None = None,
        max_latency_ms: float | None = None,
        n: int = 5,
        generator: str = "diffusion",
        seed: int = 0,
        *,
        samples: int | None = None,
        strength: float | None = None,
        proposals: int | None = None,
        margin: float | None = None,
        measure=None,
        measurements: int = 0,
        wandb: bool = False,
        run_dir: str | os.PathLike = "runs",
        progress: bool = True,
    ) -> Candidates:
        """The ``n`` best architectures for ``task`` predicted to run within
        ``max_latency_ms`` on ``device`` (a pretrained or calibrated one), best first.
        ``task`` may be left out where the bundle has a single one (FBNet's and
        MobileNetV3's ``proxy``); with several, the error lists them.

        Limits: ``n`` 1 to 10,000 (:data:`~archgen.validation.MAX_CANDIDATES`) and at
        most ``samples``; ``samples`` 1 to 100,000 (``MAX_SAMPLES``); ``proposals`` 1 to
        1,024 (``MAX_PROPOSALS``); ``seed`` 0 to 2**63-1; ``measurements`` 0 to ``samples``.

        ``generator``: ``"diffusion"`` or ``"autoregressive"`` (or ``"random"``, the
        unguided baseline, to compare with). The options left
        as None take :meth:`GuidanceSettings.for_space <archgen.generation.GuidanceSettings.for_space>` defaults
        (more samples while measuring). Runs on the object's ``threads`` torch threads.
        Raises :class:`~archgen.errors.BudgetError` when no sample meets the
        budget and warns (:class:`~archgen.errors.GenerationWarning`) when fewer
        than ``n`` do. ``wandb=True`` logs the request, settings, candidates,
        summary metrics and an accuracy-vs-latency plot to a W&B run under
        ``run_dir`` (offline unless you are logged in). The result's ``.report``
        holds the summary metrics.

        Hardware in the loop: with ``measurements=m`` and ``measure``, a function
        that measures architectures on the device (arch strings -> ms), up to ``m``
        of the candidates that decide the answer are measured while generating, a
        calibrated device is recalibrated with each, and a measured candidate is
        kept or dropped by its measured latency (see :mod:`archgen.refinement`).
        For ``device="local"`` ``measure`` defaults to onnxruntime on this machine
        (:meth:`measure`). ``progress``: a progress bar once sampling has taken 2 s.

        A task learned on part of the space only (``mbv3``'s ``imagenet``: resolution
        224) fixes those decisions in every sample (:meth:`task_domain`).
        """
        from dataclasses import replace

        from .generation import generate

        given = {"samples": samples, "strength": strength, "proposals": proposals, "margin": margin}
        defaults = GuidanceSettings.for_space(self.space, measuring=bool(measurements),
                                              scores_choices=self.scores_choices)
        settings = replace(defaults, **{k: v for k, v in given.items() if v is not None})
        if measurements and measure is None and device == "local":
            measure = self.local_measure()
        with torch_threads(self.threads):
            cands = generate(self.bundle, task=task, device=device, max_latency_ms=max_latency_ms, n=n,
                             generator=generator, seed=seed, settings=settings, data=self.data, measure=measure,
                             measurements=measurements, progress=progress)
        if wandb:
            from .experiment import log_generation

            log_generation(self, cands, run_dir)
        return cands

    def verify(self, cands: Candidates, *, settings=None, cache=None, progress: bool = True) -> Candidates:
        """Measure generated candidates on this machine with onnxruntime (:meth:`measure`,
        cached) and record it on each: ``measured_latency_ms``, ``measured_by``
        (:data:`~archgen.generation.MEASURED_HERE`) and ``over_budget`` against the
        request's budget. Meaningful for ``device="local"``; for another device it shows
        how this machine compares. Returns ``cands``."""
        from .generation import MEASURED_HERE

        measured = self.measure([c.arch for c in cands], settings=settings, cache=cache, progress=progress)
        return cands.record_measurements([m.latency_ms for m in measured], MEASURED_HERE)

    def __repr__(self) -> str:
        return f"ArchGen(space={self.space.name!r}, devices={len(self.devices())}, tasks={len(self.tasks())})"
