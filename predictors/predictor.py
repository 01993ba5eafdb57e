"""One metric (latency or accuracy) for known and calibrated targets, in real units.

:class:`MetricPredictor` wraps a trained :class:`~predictors.model.EmbeddingPredictor`
with the normalisation of each target, adds targets by few-shot calibration, and
answers ``predict(archs, target)`` with a mean and a spread.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from archgen.profiles import KernelProfile, ProfileWarning

from archgen.errors import InvalidArchError, RequestError, UnknownNameError
from archgen.validation import quote

from .calibration import (
    CalibrationPrior,
    CalibrationWarning,
    LinearPosterior,
    as_values,
    calibrate_member,
    check_finite_values,
    informative_points,
)
from .memory import LabelMemory, fit_label_memory
from .task_gp import GPInputs, TaskGP, fit_task_gp
from .model import EmbeddingPredictor, PackedEmbeddingPredictor
from .profiled import ProfileCorrection, fit_correction

#: how targets are normalised: latency as a ratio to the target's mean (scale-free
#: shape, multiplicative device differences); accuracy standardised
NORMALISATIONS = ("ratio", "standard")
#: the heads a task (accuracy) can be calibrated with; "profile" is for devices only
TASK_HEADS = ("linear", "gp")
#: how a calibrated target predicts (:meth:`MetricPredictor.calibrate`)
HEADS = TASK_HEADS + ("profile",)
#: architectures sampled to fit the fast head that guidance scores a profiled device with
#: (:meth:`MetricPredictor.predict_choices`): their profile sums are its labels
PROFILE_GUIDE_POOL = 128
#: architectures whose features are kept (about 200 bytes each)
FEATURE_CACHE_SIZE = 500_000
#: spaces with at most this many architectures get every feature precomputed
#: (:meth:`MetricPredictor.precompute_features`; NAS-Bench-201: 15,625 archs, 1.7 MB)
FEATURE_TABLE_MAX_ARCHS = 100_000


def tabulable(space) -> bool:
    """Whether ``space`` is enumerable and small enough to index every architecture
    (the feature table, the label memory's ids)."""
    return space.size is not None and space.size <= FEATURE_TABLE_MAX_ARCHS


def label_domain(space, archs: list[str], values: np.ndarray) -> dict[int, int]:
    """The decisions shared by every architecture with a label in ``values`` (NaN =
    unlabelled) where the space offers other options: ``{slot: option}``. OFA's
    ImageNet accuracies, for one, exist only at resolution 224 (slot 0)."""
    try:
        layout = space.decisions
    except NotImplementedError:
        return {}
    labelled = [a for a, v in zip(archs, np.asarray(values, dtype=np.float64)) if np.isfinite(v)]
    if not labelled:
        return {}
    choices = np.array([space.encode_choices(a) for a in labelled])
    return {int(s): int(choices[0, s]) for s in range(choices.shape[1])
            if len(layout.options[s]) > 1 and (choices[:, s] == choices[0, s]).all()}


def normalise(values: np.ndarray, normalisation: str) -> tuple[np.ndarray, float, float]:
    """``(z, offset, scale)`` with ``values = offset + scale * z`` (NaN ignored):
    ``ratio`` divides by the mean, ``standard`` standardises."""
    if normalisation == "ratio":
        offset, scale = 0.0, float(np.nanmean(values))
    else:
        offset, scale = float(np.nanmean(values)), float(np.nanstd(values))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"all values are equal or not positive (scale {scale}); need values that differ")
    return (values - offset) / scale, offset, scale


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr  # imported on use: scipy.stats costs ~0.7 s to import

    return float(spearmanr(a, b)[0])


@torch.no_grad()
def encode(model, batcher, archs: list[str], chunk: int = 8192) -> np.ndarray:
    """``[members, n, p]`` features of ``archs``, computed ``chunk`` graphs at a time."""
    return np.concatenate(
        [model.features(batcher.batch(archs[i : i + chunk])).double().numpy() for i in range(0, len(archs), chunk)],
        axis=1,
    )


@dataclass(frozen=True)
class Prediction:
    """Predicted values of one metric for a list of architectures.

    ``mean`` and ``std`` are in the metric's unit (ms, or % accuracy); ``std``
    combines ensemble disagreement with the target's residual noise (and, for a
    calibrated target, the posterior uncertainty of its embedding). Where the
    calibration prior says noise is relative (latency), it grows with the prediction.
    ``np.asarray(prediction)`` gives the means.
    """

    target: str
    unit: str
    mean: np.ndarray
    std: np.ndarray

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.mean, dtype=dtype)

    def __len__(self) -> int:
        return len(self.mean)

    def upper(self, margin: float = 1.0) -> np.ndarray:
        """``mean + margin * std``: a pessimistic value for keeping a budget."""
        return self.mean + margin * self.std


@dataclass(frozen=True)
class Calibration:
    """Outcome of adding a target from k measurements."""

    target: str
    k: int
    seconds: float
    fit_spearman: float  # rank agreement of the calibrated predictor on the k points (NaN: its predictions tie)
    noise_std: float  # inferred measurement noise, in the metric's unit


@dataclass
class _Target:
    offset: float
    scale: float
    noise: float  # residual std in normalised units
    posteriors: list[LinearPosterior] | None = None  # set for calibrated targets
    archs: list[str] | None = None  # what a calibrated target was calibrated from
    values: np.ndarray | None = None
    gp: TaskGP | None = None  # set for targets calibrated with head="gp" (then posteriors is None)
    profile: KernelProfile | None = None  # head="profile": the device's kernel profile ...
    correction: ProfileCorrection | None = None  # ... and its learned correction

    @property
    def head(self) -> str | None:
        """How a calibrated target predicts (:data:`HEADS`); None for a pretrained one."""
        if self.archs is None:
            return None
        return "profile" if self.profile is not None else "gp" if self.gp is not None else "linear"


@dataclass
class MetricPredictor:
    """A metric over one space: known targets from pretraining, more by calibration."""

    space: object
    model: EmbeddingPredictor | PackedEmbeddingPredictor
    kind: str  # "latency" or "accuracy"
    unit: str
    normalisation: str
    view: str
    norms: dict[str, tuple[float, float, float]]  # known target -> (offset, scale, noise)
    prior: CalibrationPrior = field(default_factory=CalibrationPrior)
    #: ``[members, space.size, p]`` float32 features of every architecture in
    #: :meth:`enumerate` order, for small enumerable spaces (None elsewhere)
    feature_table: np.ndarray | None = field(default=None, repr=False)
    #: what it remembers of its pretraining labels (:mod:`predictors.memory`), or None
    memory: LabelMemory | None = field(default=None, repr=False)
    #: per target, the decisions all its labels share where the space offers more
    #: (``{slot: option}``; see :func:`label_domain`): outside them the target was
    #: never observed, so it is not predicted there
    domains: dict[str, dict[int, int]] = field(default_factory=dict)
    #: a fast student of the network's features over option vectors
    #: (:mod:`predictors.student`), which guidance scores proposals with; or None
    student: object | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        self.model.eval()
        self._targets: dict[str, _Target] = {
            t: _Target(*self.norms[t]) for t in self.model.targets
        }
        self._feature_cache: dict[str, np.ndarray] = {}
        self._batcher = None
        if self.feature_table is not None:
            expected = (self.model.members, self.space.size, self.model.config["rank"] + 1)
            if tuple(self.feature_table.shape) != expected:
                raise ValueError(f"feature table has shape {tuple(self.feature_table.shape)}, expected {expected}")

    # -- names ---------------------------------------------------------------------
    @property
    def known_targets(self) -> list[str]:
        return list(self.model.targets)

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    @property
    def _known_weights(self) -> np.ndarray:
        """``[members, known targets, p]`` embeddings of the pretrained targets."""
        return self.model.weights.detach().double().numpy()

    def _target(self, name: str) -> _Target:
        if name not in self._targets:
            raise UnknownNameError(
                "device" if self.kind == "latency" else "task", name, self._targets
            )
        return self._targets[name]

    # -- features -------------------------------------------------------------------
    def coerce(self, archs) -> list[str]:
        """Canonical arch strings of ``archs`` (strings or ArchGraphs of the space)."""
        if isinstance(archs, str) or not hasattr(archs, "__iter__"):
            raise InvalidArchError(f"expected a list of architectures, got {type(archs).__name__}")
        return [self.space.coerce(a) for a in archs]

    @property
    def batcher(self):
        """What turns arch strings into the encoder's input (built on first use:
        a graph encoder's imports torch_geometric)."""
        if self._batcher is None:
            from graph_encoders import make_batcher

            self._batcher = make_batcher(self.space, self.view, self.model.config["encoder"])
        return self._batcher

    @property
    def reads_choices(self) -> bool:
        """Whether it predicts straight from option-index vectors (:meth:`predict_choices`):
        its encoder reads them, or it has a feature :attr:`student`."""
        return self.model.reads_choices or self.student is not None

    def _encode(self, archs: list[str]) -> np.ndarray:
        return encode(self.model, self.batcher, archs)

    def precompute_features(self, archs: list[str] | None = None, features: np.ndarray | None = None) -> None:
        """Encode every architecture of a small enumerable space once into
        :attr:`feature_table` (saved with the bundle): predictions then never run
        the encoder, and loading a bundle needs no torch_geometric. ``features``
        (``[members, len(archs), p]``) of ``archs`` already encoded are reused."""
        size = self.space.size
        if not tabulable(self.space):
            raise ValueError(f"the {self.space.name} space has {size or 'too many'} architectures; a feature "
                             f"table is for enumerable spaces of at most {FEATURE_TABLE_MAX_ARCHS:,}")
        table = np.zeros((self.model.members, size, self.model.config["rank"] + 1), dtype=np.float32)
        done = np.zeros(size, dtype=bool)
        if archs is not None:
            rows = [self.space.index_of(a) for a in archs]
            table[:, rows], done[rows] = features, True
        missing = np.flatnonzero(~done)
        if len(missing):
            every = list(self.space.enumerate())
            table[:, missing] = self._encode([every[i] for i in missing])
        self.feature_table = table

    def features(self, archs: list[str]) -> np.ndarray:
        """``[members, n, p]`` features of canonical arch strings (from the feature
        table where there is one, else encoded and cached per arch)."""
        if self.feature_table is not None:
            return self.feature_table[:, [self.space.index_of(a) for a in archs]].astype(np.float64)
        missing = list(dict.fromkeys(a for a in archs if a not in self._feature_cache))
        if missing:
            feats = self._encode(missing)
            for j, a in enumerate(missing):
                if len(self._feature_cache) >= FEATURE_CACHE_SIZE:
                    self._feature_cache.pop(next(iter(self._feature_cache)))
                self._feature_cache[a] = feats[:, j]
        if not archs:
            return np.zeros((self.model.members, 0, self.model.config["rank"] + 1))
        return np.stack([self._feature_cache[a] for a in archs], axis=1)

    # -- domains --------------------------------------------------------------------------
    def domain(self, target: str) -> dict[int, int]:
        """``{slot: option}`` every architecture must have for ``target`` to be predicted
        (empty: anywhere in the space)."""
        self._target(target)
        return dict(self.domains.get(target, {}))

    def check_domain(self, archs: list[str], target: str) -> None:
        """A :class:`~archgen.errors.DomainError` naming the first of ``archs`` outside ``target``'s domain."""
        domain = self.domains.get(target)
        if not domain:
            return
        options = self.space.decisions.options
        for a in archs:
            choices = self.space.encode_choices(a)
            for slot, option in domain.items():
                if choices[slot] != option:
                    from archgen.errors import DomainError

                    others = [t for t in self.targets if not self.domains.get(t)]
                    raise DomainError(
                        f"{self.kind} target {target!r} was learned only from architectures with "
                        f"{options[slot][option]!r} (decision slot {slot}); {a[:200]!r} has {options[slot][choices[slot]]!r}. "
                        f"Predict it with {options[slot][option]!r}"
                        + (f", or use {', '.join(map(repr, others))}, known everywhere" if others else "")
                    )

    # -- prediction ---------------------------------------------------------------------
    def predict(self, archs, target: str, *, remembered: bool = True, exact: bool = True) -> Prediction:
        """Mean and spread of ``target`` for ``archs``. A pretrained target with a
        label memory answers its labelled architectures from it (``remembered=False``:
        the network alone). A profiled device (head ``"profile"``) sums each network's
        kernels (tens of milliseconds per new architecture); ``exact=False`` asks its fast
        head instead (the features' linear fit to the profile that guidance uses). Architectures outside the target's :meth:`domain` are
        a :class:`~archgen.errors.DomainError`, never a silent extrapolation."""
        archs = self.coerce(archs)
        self.check_domain(archs, target)
        if self._target(target).profile is not None and exact:
            return self._predict_profiled(archs, target)
        return self._predict(self.features(archs), target, archs if remembered else None)

    def _mean_features(self, archs: list[str]) -> np.ndarray:
        """``[n, p]`` features averaged over members, without the constant column."""
        return self.features(archs).mean(axis=0)[:, 1:]

    def _predict_profiled(self, archs: list[str], target: str) -> Prediction:
        """Profile sum times the learned correction (:mod:`predictors.profiled`); NaN, with a
        :class:`~archgen.profiles.ProfileWarning`, where the profile lacks a needed kernel."""
        tgt = self._target(target)
        sums, lacking = tgt.profile.latencies(archs)
        if lacking:
            kernels = sorted({k for ks in lacking.values() for k in ks})
            warnings.warn(f"{len(lacking)} of {len(archs)} architectures cannot be predicted on {target!r}: its "
                          f"profile lacks {len(kernels)} kernel(s) they need ({', '.join(kernels[:3])}"
                          f"{', ...' if len(kernels) > 3 else ''}); they are NaN", ProfileWarning, stacklevel=3)
        ratio, spread = tgt.correction.predict(self._mean_features(archs)) if archs else (np.zeros(0), np.zeros(0))
        return Prediction(target, self.unit, sums * ratio, sums * spread)

    @torch.no_grad()
    def predict_choices(self, choices: np.ndarray, target: str) -> Prediction:
        """:meth:`predict` for ``[n, S]`` option-index vectors of the space's decision
        layout, with no arch strings: what guidance scores tens of thousands of
        proposals with. Features come from the encoder where it reads choices, else
        from the feature :attr:`student` (an approximation of the network's); the
        label memory, keyed by arch, is not consulted."""
        if not self.reads_choices:
            raise ValueError(f"this {self.kind} predictor reads graphs ({self.model.config['encoder']}) and has "
                             "no feature student; use predict(archs, target)")
        self._target(target)
        choices = np.asarray(choices)
        if len(choices) == 0:
            return self._predict(np.zeros((self.model.members, 0, self.model.config["rank"] + 1)), target, None)
        from graph_encoders.choices import ChoiceBatcher

        batch = ChoiceBatcher(self.space).from_choices(choices)
        network = self.model if self.model.reads_choices else self.student
        return self._predict(network.features(batch).double().numpy(), target, None)

    def _predict(self, phi: np.ndarray, target: str, remembered_archs: list[str] | None) -> Prediction:
        """Mean and spread of ``target`` from features ``phi`` (``[members, n, p]``);
        the label memory answers ``remembered_archs`` where it knows them."""
        tgt = self._target(target)
        if tgt.gp is not None:
            mean_z, total = tgt.gp.predict(GPInputs.of(phi, self._known_weights))
            epistemic, noise = total - tgt.gp.noise, tgt.gp.noise
        else:
            if tgt.posteriors is None:
                w = self._known_weights[:, self.model.targets.index(target)]
                per_member = np.einsum("enp,ep->en", phi, w)
                epistemic, noise = per_member.var(axis=0), tgt.noise**2
            else:
                outs = [post.predict(phi[e]) for e, post in enumerate(tgt.posteriors)]
                per_member = np.stack([m for m, _ in outs])
                noise = float(np.mean([post.noise for post in tgt.posteriors]))
                epistemic = per_member.var(axis=0) + np.mean([s**2 for _, s in outs], axis=0) - noise
            mean_z = per_member.mean(axis=0)
        scale = self.prior.noise_scale(mean_z)  # multiplicative latency noise, where the prior says so
        if scale is not None:
            noise = noise * scale
        var_z = np.maximum(epistemic, 0.0) + noise
        if remembered_archs is not None and self.memory is not None and target in self.memory.targets:
            known, shift, label_var = self.memory.lookup(target, self._memory_ids(remembered_archs))
            mean_z = mean_z + shift
            var_z = np.where(known, label_var, var_z)
        mean = tgt.offset + tgt.scale * mean_z
        if self.kind == "accuracy" and self.unit == "%":  # a linear head can extrapolate past 0..100 %
            mean = np.clip(mean, 0.0, 100.0)
        elif self.normalisation == "ratio":  # ... and below 0 ms (TransNAS-Bench's dead cells in MACs)
            mean = np.maximum(mean, 0.0)
        return Prediction(target, self.unit, mean, tgt.scale * np.sqrt(var_z))

    def _memory_ids(self, archs: list[str]) -> list:
        """How the label memory names ``archs``: indices in a small enumerable space, else the strings."""
        if tabulable(self.space):
            return [self.space.index_of(a) for a in archs]
        return list(archs)

    def remember_labels(self, archs, values: dict[str, np.ndarray]) -> LabelMemory:
        """Set :attr:`memory` from the pretraining labels ``values`` (pretrained
        target -> value per arch of ``archs``, NaN = unlabelled); see
        :mod:`predictors.memory`. Classes are the graphs this predictor reads."""
        archs = self.coerce(archs)
        names = list(values)
        for name in names:
            if name not in self.model.targets:
                raise ValueError(f"{name!r} is not a pretrained {self.kind} target of this predictor; "
                                 f"known: {self.known_targets}")
        labels = np.stack([(np.asarray(values[n], dtype=np.float64).reshape(-1) - self._targets[n].offset)
                           / self._targets[n].scale for n in names], axis=1)
        if labels.shape[0] != len(archs):
            raise ValueError(f"got {len(archs)} architectures but {labels.shape[0]} values per target")
        # the network's own prediction (normalised, unclipped): what the memory corrects
        w = self._known_weights[:, [self.model.targets.index(n) for n in names]]
        preds = np.einsum("enp,etp->ent", self.features(archs), w).mean(axis=0)
        classes = [self.space.view_graph(a, self.view).canonical_hash() for a in archs]
        self.memory = fit_label_memory(names, self._memory_ids(archs), classes, labels, preds)
        return self.memory

    def scale(self, target: str) -> float:
        """The target's natural unit of variation (its normalisation scale): how far
        apart values of this target typically are, in the metric's unit."""
        return self._target(target).scale

    # -- calibration -----------------------------------------------------------------------
    def calibrate(self, name: str, archs, values, *, replace: bool = False, head: str = "linear",
                  profile: KernelProfile | None = None) -> Calibration:
        """Add target ``name`` from measured ``values`` of ``archs`` (k >= 2, differing).

        ``head``: ``"linear"`` infers a linear head on the features under the prior learned
        from the known targets (:func:`~predictors.calibration.calibrate_member`);
        ``"gp"`` (standardised targets: tasks) a Gaussian process whose kernels are learned
        from the known targets (:mod:`predictors.task_gp`), which can express a task
        that is not a rescaled known one; ``"profile"`` (latency) a device from its kernel
        ``profile`` (:class:`~archgen.profiles.KernelProfile`), the profile's sum corrected
        by the k measured ``values`` (k may be 0: the profile alone; :mod:`predictors.profiled`).

        Values must be finite (latencies also > 0 ms); standardised targets (accuracy)
        must not be all equal, having no scale or ranking to learn. Each bad input is a
        :class:`~archgen.errors.RequestError` naming the value and its position. Where the
        values (equal latencies: their level still calibrates) or the calibrated predictions
        of the k architectures are all equal, ``fit_spearman`` is NaN and a
        :class:`~predictors.calibration.CalibrationWarning` says why.
        """
        noun = "latencies" if self.kind == "latency" else "accuracies" if self.kind == "accuracy" else "values"
        if not isinstance(name, str) or not name:
            raise RequestError(f"target name must be a non-empty string, got {quote(name)}")
        if name in self.model.targets:
            raise RequestError(f"{name!r} is a pretrained {self.kind} target; calibrate under another name")
        if name in self._targets and not replace:
            raise RequestError(f"{name!r} is already calibrated; pass replace=True to recalibrate it")
        y = as_values(values, noun)
        archs = self.coerce(archs)
        if len(archs) != len(y):
            raise RequestError(f"got {len(archs)} architectures but {len(y)} values")
        if head == "profile":
            if self.kind != "latency":
                raise RequestError(f"head='profile' is for devices (latency), not {self.kind} targets")
            if not isinstance(profile, KernelProfile):
                raise RequestError(f"head='profile' needs a KernelProfile, got {quote(profile)}")
            if profile.space != self.space.name:
                raise RequestError(f"the kernel profile is of space {profile.space!r}, not {self.space.name!r}")
        elif profile is not None:
            raise RequestError(f"a kernel profile goes with head='profile', not head={quote(head)}")
        elif len(y) < 2:
            raise RequestError(f"calibration needs at least 2 measured architectures, got {len(y)}")
        seen: dict[str, int] = {}
        for i, a in enumerate(archs):
            if a in seen:
                raise RequestError(f"architecture {quote(a)} appears twice (positions {seen[a]} and {i}); give each once")
            seen[a] = i
        check_finite_values(y, noun)
        if self.kind == "latency" and (y <= 0).any():
            i = int(np.flatnonzero(y <= 0)[0])
            raise RequestError(f"latencies must be positive milliseconds; position {i} is {float(y[i])}")
        if head == "profile":
            return self._calibrate_profile(name, archs, y, profile)
        if np.ptp(y) == 0 and self.normalisation == "standard":  # ratio (latency) keeps the level at least
            raise RequestError(f"the {noun} are all equal ({float(y[0]):g}); calibration needs differing values")
        if head not in HEADS:
            raise RequestError(f"head must be one of {', '.join(map(repr, HEADS))}, got {quote(head)}")
        if head == "gp" and self.normalisation != "standard":
            raise RequestError(f"head='gp' is for standardised targets (tasks), not {self.kind} targets")
        z, offset, scale = normalise(y, self.normalisation)
        start = time.perf_counter()
        phi = self.features(archs)
        known = self._known_weights
        if head == "gp":
            gp = fit_task_gp(GPInputs.of(phi, known), known, z, self.prior)
            self._targets[name] = _Target(offset, scale, 0.0, None, archs, y, gp)
            noise_var = gp.noise
        else:
            rel = self.prior.noise_scale(z)
            posteriors = [calibrate_member(known[e], phi[e], z, self.prior, rel) for e in range(self.model.members)]
            self._targets[name] = _Target(offset, scale, 0.0, posteriors, archs, y)
            noise_var = float(np.mean([p.noise for p in posteriors]))
        seconds = time.perf_counter() - start
        fitted = self.predict(archs, name).mean
        if np.ptp(fitted) == 0 or np.ptp(y) == 0:
            rho = float("nan")
            why = (f"the {len(y)} measured {noun} are all equal" if np.ptp(y) == 0 else
                   f"the calibrated predictions of the {len(y)} architectures are all equal (the predictor "
                   "cannot tell them apart)")
            warnings.warn(f"{self.kind} target {name!r}: {why}, so the rank agreement fit_spearman is undefined "
                          "(NaN); calibrate from architectures that differ more", CalibrationWarning, stacklevel=2)
        else:
            rho = _spearman(fitted, y)
        noise = scale * float(np.sqrt(noise_var))
        return Calibration(name, len(y), seconds, rho, noise)

    def _calibrate_profile(self, name: str, archs: list[str], y: np.ndarray, profile: KernelProfile) -> Calibration:
        start = time.perf_counter()
        sums = profile.latency(archs)  # a measured network the profile cannot sum is an error
        pool = self.space.sample(PROFILE_GUIDE_POOL, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProfileWarning)
            pool_sums, lacking = profile.latencies(pool)
        pool = [a for a in pool if a not in lacking]
        if len(pool) < 2:
            raise RequestError(f"the kernel profile of {name!r} lacks kernels that {len(lacking)} of "
                               f"{PROFILE_GUIDE_POOL} sampled architectures need; it predicts too little of the "
                               f"{self.space.name} space to generate with (missing: {len(profile.missing())} kernels)")
        pool_sums = pool_sums[np.isfinite(pool_sums)]
        pool_features = self.features(pool)
        correction = fit_correction(pool_features.mean(axis=0)[:, 1:], self._mean_features(archs), y / sums)
        # what guidance scores proposals with: a linear head fitted to the corrected profile on the pool
        guide = pool_sums * correction.predict(pool_features.mean(axis=0)[:, 1:])[0]
        z, offset, scale = normalise(guide, self.normalisation)
        known = self._known_weights
        posteriors = [calibrate_member(known[e], pool_features[e], z, self.prior) for e in range(self.model.members)]
        self._targets[name] = _Target(offset, scale, 0.0, posteriors, archs, y, profile=profile,
                                      correction=correction)
        fitted = self.predict(archs, name).mean
        rho = _spearman(fitted, y) if len(y) > 1 and np.ptp(y) > 0 and np.ptp(fitted) > 0 else float("nan")
        noise = float(np.sqrt(correction.noise) * np.median(sums)) if len(y) else float("nan")
        return Calibration(name, len(y), time.perf_counter() - start, rho, noise)

    def choose_informative(self, archs, k: int) -> list[str]:
        """The ``k`` of ``archs`` whose measurements would calibrate a new target best
        (:func:`~predictors.calibration.informative_points`: informative under the
        calibration prior, and diverse)."""
        archs = list(dict.fromkeys(self.coerce(archs)))
        picked = informative_points(self._known_weights, self.features(archs), k, self.prior)
        return [archs[i] for i in picked]

    def head_of(self, name: str) -> str | None:
        """How calibrated target ``name`` predicts (:data:`HEADS`); None for a pretrained one."""
        return self._target(name).head

    def measurements(self, name: str) -> tuple[list[str], np.ndarray]:
        """The architectures and values calibrated target ``name`` was calibrated from."""
        tgt = self._target(name)
        if tgt.archs is None:
            raise ValueError(f"{name!r} is a pretrained {self.kind} target; it has no calibration measurements")
        return list(tgt.archs), tgt.values.copy()

    def add_measurements(self, name: str, archs, values) -> Calibration:
        """Recalibrate calibrated target ``name`` from its measurements plus these
        (an architecture measured again takes its new value)."""
        old_archs, old_values = self.measurements(name)
        merged = dict(zip(old_archs, old_values.tolist()))
        new = self.coerce(archs)
        values = as_values(values, "latencies" if self.kind == "latency" else "values")
        if len(new) != len(values):
            raise RequestError(f"got {len(new)} architectures but {len(values)} values")
        merged.update(zip(new, values.tolist()))
        return self.calibrate(name, list(merged), list(merged.values()), replace=True, head=self.head_of(name),
                              profile=self._target(name).profile)

    def profile_of(self, name: str) -> KernelProfile | None:
        """The kernel profile calibrated target ``name`` predicts from (head ``"profile"``), else None."""
        return self._target(name).profile

    def tune_prior(
        self,
        archs: list[str],
        values: dict[str, np.ndarray],
        grid: Sequence[CalibrationPrior],
        *,
        k: int = 10,
        seeds: int = 3,
        sample: int = 3000,
    ) -> CalibrationPrior:
        """Choose the calibration prior by leave-one-target-out among the *known*
        targets: each known target in turn is treated as new (its own embedding
        left out of the prior), calibrated from k random architectures, and scored
        by Spearman on ``sample`` others. Sets and returns the best prior."""
        names = [t for t in self.model.targets if t in values]
        if len(names) < 3:
            return self.prior
        rows = np.random.default_rng(0).choice(len(archs), min(sample, len(archs)), replace=False)
        # a target scored where it was measured (NaN: not measured)
        measured = {n: np.flatnonzero(np.isfinite(np.asarray(values[n], dtype=np.float64)[rows])) for n in names}
        names = [n for n in names if len(measured[n]) > k]
        if len(names) < 3:
            return self.prior
        phi = self.features([archs[i] for i in rows])
        known = self._known_weights
        best, best_score = self.prior, -np.inf
        for prior in grid:
            scores = []
            for name in names:
                at = measured[name]
                y = np.asarray(values[name], dtype=np.float64)[rows][at]
                others = np.delete(known, self.model.targets.index(name), axis=1)
                for seed in range(seeds):
                    pick = at[np.random.default_rng(seed).choice(len(at), k, replace=False)]
                    z = normalise(np.asarray(values[name], dtype=np.float64)[rows][pick], self.normalisation)[0]
                    rel = prior.noise_scale(z)
                    preds = [calibrate_member(others[e], phi[e, pick], z, prior, rel).predict(phi[e, at])[0]
                             for e in range(self.model.members)]
                    scores.append(_spearman(np.mean(preds, axis=0), y))
            score = float(np.nanmean(scores))
            if score > best_score:
                best, best_score = prior, score
        self.prior = best
        return best

    def forget(self, name: str) -> None:
        """Remove a calibrated target."""
        if name in self.model.targets:
            raise ValueError(f"{name!r} is pretrained and cannot be removed")
        self._target(name)
        del self._targets[name]
