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

from .graph import ArchGraph
from .spaces import get_space

ArchLike = str | ArchGraph


def bundled_path(space: str) -> Path:
    """Where the embedded default bundle of ``space`` lives inside the package."""
    return Path(str(resources.files("archgen") / "bundles" / f"{space}.pt"))


class ArchGen:
    """Predict, calibrate (and generate) in one search space.

    Build it with :meth:`pretrained`; devices and tasks added by calibration
    live in this object and behave exactly like the pretrained ones.
    """

    def __init__(self, bundle):
        self.bundle = bundle
        self.space = get_space(bundle.space)

    @classmethod
    def pretrained(cls, space: str = "nb201", path: str | os.PathLike | None = None) -> ArchGen:
        """The embedded default bundle of ``space`` (no data folder needed), or the
        bundle at ``path`` made by ``archgen pretrain``."""
        from predictors.bundle import PredictorBundle

        name = get_space(space).name
        file = Path(path) if path is not None else bundled_path(name)
        if path is None and not file.is_file():
            raise FileNotFoundError(
                f"no embedded bundle for space {name!r} at {file}; create one with "
                f"`archgen pretrain --space {name} --out {file}`"
            )
        bundle = PredictorBundle.load(file)
        if bundle.space != name:
            raise ValueError(f"bundle {file} is for space {bundle.space!r}, not {name!r}")
        return cls(bundle)

    # -- names -------------------------------------------------------------------
    def devices(self) -> list[str]:
        """Pretrained and calibrated device names."""
        return self.bundle.latency.targets

    def tasks(self) -> list[str]:
        """Pretrained and calibrated task names."""
        return self.bundle.accuracy.targets

    # -- calibration -------------------------------------------------------------------
    def calibrate_device(self, name: str, archs: Sequence[ArchLike], latencies_ms: Sequence[float], *,
                         replace: bool = False):
        """Add device ``name`` from measured latencies (ms) of k >= 2 architectures
        (about 10 is enough). Returns a :class:`~predictors.predictor.Calibration`."""
        return self.bundle.latency.calibrate(name, archs, latencies_ms, replace=replace)

    def calibrate_task(self, name: str, archs: Sequence[ArchLike], accuracies: Sequence[float], *,
                       replace: bool = False):
        """Add task ``name`` from the accuracies (%) of k >= 2 trained architectures."""
        return self.bundle.accuracy.calibrate(name, archs, accuracies, replace=replace)

    # -- prediction ----------------------------------------------------------------------
    def predict_latency(self, archs: Sequence[ArchLike], device: str):
        """Latency (ms) on ``device``: a :class:`~predictors.predictor.Prediction`
        with ``.mean`` and ``.std`` arrays (``np.asarray`` gives the means)."""
        return self.bundle.latency.predict(archs, device)

    def predict_accuracy(self, archs: Sequence[ArchLike], task: str):
        """Accuracy (%) on ``task``, as a :class:`~predictors.predictor.Prediction`."""
        return self.bundle.accuracy.predict(archs, task)

    def __repr__(self) -> str:
        return f"ArchGen(space={self.space.name!r}, devices={len(self.devices())}, tasks={len(self.tasks())})"
