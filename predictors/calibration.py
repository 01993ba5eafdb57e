"""Few-shot calibration: the embedding of a new device (or task) from k measurements.

The pretrained model gives every architecture features ``phi(a) = [1, f(a)]`` and
every known target an embedding ``w_t``; a prediction is ``phi(a) . w``. For a
new target we infer ``w`` from k measured pairs by Bayesian linear regression
whose prior is learned from the known targets: a mixture with one component
centred on each known target (the new device "resembles" a known one up to
scale and a small deviation along directions known devices vary in) and one
broad component around their mean, each crossed with a grid of noise levels.
Components are weighted by their marginal likelihood on the k points, so the
data choose which known target to lean on and how much noise to assume. This is
closed-form: milliseconds on a CPU, no gradient steps, nothing retrained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archgen.errors import RequestError
from archgen.validation import quote

#: how :meth:`ArchGen.calibrate_task <archgen.api.ArchGen.calibrate_task>` reads accuracies:
#: ``percent`` in [0, 100], or ``fraction`` in [0, 1] (multiplied by 100)
UNITS: dict[str, float] = {"percent": 100.0, "fraction": 1.0}


class CalibrationWarning(UserWarning):
    """A calibration that succeeded but whose fit cannot be judged (its ``fit_spearman`` is NaN)."""


def as_values(values, noun: str = "values") -> np.ndarray:
    """``values`` as a 1-D float array, or a :class:`~archgen.errors.RequestError` saying
    what they are instead (strings, nested lists, a matrix)."""
    if isinstance(values, (str, bytes)):
        raise RequestError(f"{noun} must be a list of numbers, got {quote(values)}")
    try:
        y = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"{noun} must be a list of numbers, got {quote(values)} ({exc})") from None
    if y.ndim != 1:
        raise RequestError(f"{noun} must be a flat list of numbers, got an array of shape {y.shape}")
    return y


def check_finite_values(y: np.ndarray, noun: str = "values") -> None:
    """A :class:`~archgen.errors.RequestError` naming the first NaN or infinite value and its position."""
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        more = f" ({bad.size - 1} more are not finite)" if bad.size > 1 else ""
        raise RequestError(f"{noun} must be finite; position {int(bad[0])} is {float(y[bad[0]])}{more}")


def check_accuracies(values, units: str = "percent") -> np.ndarray:
    """Accuracies as percent, checked against the range of their ``units`` (see :data:`UNITS`).

    Why: an accuracy predictor clips its predictions to [0, 100], so a task calibrated
    from 150...159 predicted 100.0 everywhere and lost the ranking, and fractions read as
    percent calibrate a task whose every value is near 0. Values outside the range, not
    finite, or (read as percent) all within [0, 1] are a RequestError naming the value
    and its position, or saying to pass ``units="fraction"``.
    """
    if not isinstance(units, str) or units not in UNITS:
        raise RequestError(f"units must be one of {', '.join(map(repr, UNITS))}, got {quote(units)}")
    y = as_values(values, "accuracies")
    check_finite_values(y, "accuracies")
    high = UNITS[units]
    bad = np.flatnonzero((y < 0) | (y > high))
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size - 1} more are outside it)" if bad.size > 1 else ""
        hint = ("; these look like percent: leave units='percent'"
                if units == "fraction" and ((y >= 0) & (y <= 100)).all() else "")
        what = "in percent" if units == "percent" else "as fractions"
        raise RequestError(f"accuracies {what} must lie within [0, {high:g}]; position {i} is {float(y[i]):g}{more}{hint}")
    if units == "percent" and y.size and (y <= 1.0).all():
        raise RequestError(f"all {y.size} accuracies lie within [0, 1], as fractions would; calibrate_task reads "
                           "percent (0-100): pass units='fraction' to have them multiplied by 100")
    return y * 100.0 if units == "fraction" else y


NOISE_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True)
class CalibrationPrior:
    """Hyperparameters of the mixture prior (see module docstring).

    ``neighbour_spread``: covariance scale of components centred on a known target,
    as a fraction of the known targets' covariance; ``slack``: isotropic variance
    added to every component, relative to the mean variance of the known targets'
    embeddings (lets the new target leave their span); ``scale_var``: prior
    variance of a free rescaling of the component mean; ``global_mass``: prior
    mass of the broad component; ``noise_grid``: candidate noise variances of the
    normalised targets; ``relative_floor``: None for noise of constant variance,
    else noise whose variance grows like ``value**2 + relative_floor**2`` (in
    units of the target's mean; multiplicative latency noise with a floor, so a
    near-zero measurement does not pin the fit).
    """

    neighbour_spread: float = 0.03
    slack: float = 1e-3
    scale_var: float = 1.0
    global_mass: float = 0.5
    noise_grid: tuple[float, ...] = NOISE_GRID
    relative_floor: float | None = None

    def noise_scale(self, value: np.ndarray) -> np.ndarray | None:
        """Relative noise variance at (normalised) ``value``: 1 at value 1, or None
        (constant) when :attr:`relative_floor` is None."""
        if self.relative_floor is None:
            return None
        return (np.maximum(value, 0.0) ** 2 + self.relative_floor**2) / (1.0 + self.relative_floor**2)


#: candidate priors searched by :meth:`~predictors.predictor.MetricPredictor.tune_prior`
PRIOR_GRID: tuple[CalibrationPrior, ...] = tuple(
    CalibrationPrior(neighbour_spread=g, slack=s) for g in (0.03, 0.1, 0.3) for s in (1e-3, 1e-2, 1e-1)
)
#: the relative-noise floors also searched for ratio-normalised (latency) targets
RELATIVE_FLOORS: tuple[float | None, ...] = (None, 0.3, 1.0)


@dataclass(frozen=True)
class LinearPosterior:
    """A calibrated target for one ensemble member: ``y ~ N(phi.w, phi S phi^T + noise)``."""

    mean: np.ndarray  # [p]
    cov: np.ndarray  # [p, p]
    noise: float

    def predict(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (normalised units) for features ``phi`` ``[n, p]``."""
        mean = phi @ self.mean
        var = np.einsum("np,pq,nq->n", phi, self.cov, phi) + self.noise
        return mean, np.sqrt(np.maximum(var, 0.0))


def _known_moments(known: np.ndarray, prior: CalibrationPrior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, covariance and slack (isotropic, :attr:`CalibrationPrior.slack`) of the known
    targets' embeddings ``[T, p]``: what every component of the prior is built from."""
    p = known.shape[1]
    spread = np.cov(known, rowvar=False) if len(known) > 1 else np.zeros((p, p))
    return known.mean(axis=0), spread, prior.slack * max(float(np.mean(known**2)), 1e-12) * np.eye(p)


def calibrate_member(
    known: np.ndarray,
    phi: np.ndarray,
    y: np.ndarray,
    prior: CalibrationPrior = CalibrationPrior(),
    relative_noise: np.ndarray | None = None,
) -> LinearPosterior:
    """Posterior over a new target's embedding for one member.

    ``known``: ``[T, p]`` embeddings of the known targets; ``phi``: ``[k, p]``
    features of the measured architectures; ``y``: ``[k]`` normalised measurements.
    The mixture posterior is moment-matched to one Gaussian. ``relative_noise``
    (``[k]``, default ones) scales each point's noise variance: latency noise is
    multiplicative, so a point's variance grows with its value squared.
    """
    known = np.asarray(known, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t_count = len(known)
    centre, spread, slack = _known_moments(known, prior)
    components = [(known[j], prior.neighbour_spread, (1 - prior.global_mass) / t_count) for j in range(t_count)]
    components.append((centre, 1.0, prior.global_mass))
    eye_k = np.diag(np.ones(len(y)) if relative_noise is None else np.asarray(relative_noise, dtype=np.float64))
    means, covs, noises, log_w = [], [], [], []
    for m, g, mass in components:
        s = prior.scale_var * np.outer(m, m) + g * spread + slack
        ps = phi @ s  # [k, p]
        k0 = ps @ phi.T
        r = y - phi @ m
        for noise in prior.noise_grid:
            kmat = k0 + noise * eye_k
            chol = np.linalg.cholesky(kmat)
            solved = np.linalg.solve(kmat, np.column_stack([r, ps]))
            alpha = solved[:, 0]
            means.append(m + ps.T @ alpha)
            covs.append(s - ps.T @ solved[:, 1:])
            noises.append(noise)
            log_w.append(np.log(mass / len(prior.noise_grid)) - 0.5 * r @ alpha - np.log(np.diag(chol)).sum())
    log_w = np.array(log_w)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    means_a = np.array(means)
    mean = w @ means_a
    dev = means_a - mean
    cov = np.einsum("c,cpq->pq", w, np.array(covs)) + np.einsum("c,cp,cq->pq", w, dev, dev)
    return LinearPosterior(mean=mean, cov=cov, noise=float(w @ np.array(noises)))


def prior_covariance(known: np.ndarray, prior: CalibrationPrior = CalibrationPrior()) -> np.ndarray:
    """``[p, p]`` covariance of a new target's embedding before any measurement: the broad
    component of the mixture prior (its free rescaling of the known targets' mean, their
    spread, and the slack), the part of the prior that says where the known targets differ."""
    centre, spread, slack = _known_moments(np.asarray(known, dtype=np.float64), prior)
    return prior.scale_var * np.outer(centre, centre) + spread + slack


def informative_points(known: np.ndarray, phi: np.ndarray, k: int, prior: CalibrationPrior = CalibrationPrior(),
                       noise: float | None = None) -> list[int]:
    """Which ``k`` rows of ``phi`` (``[members, n, p]``; ``known`` ``[members, T, p]``) to
    measure so that the calibrated target is known best: greedy maximum-variance design
    under the prior (:func:`prior_covariance`), summed over ensemble members.

    Each step takes the point whose prediction the prior is least sure of, then
    conditions the prior on it, so the next point is informative *given* the first:
    points that the known targets already explain, or that repeat a chosen one, lose
    their variance, which makes the choice diverse as well as informative (for a linear
    Gaussian model, greedy variance reduction is the standard near-optimal design).
    ``noise`` defaults to the middle of the prior's noise grid."""
    phi = np.asarray(phi, dtype=np.float64)
    members, n, _ = phi.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be from 1 to the {n} candidate points, got {k}")
    noise = float(np.median(prior.noise_grid)) if noise is None else noise
    covs = [prior_covariance(known[e], prior) for e in range(members)]
    chosen: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        variance = sum(np.einsum("np,pq,nq->n", phi[e], covs[e], phi[e]) for e in range(members))
        variance[~available] = -np.inf
        i = int(np.argmax(variance))
        chosen.append(i)
        available[i] = False
        for e in range(members):
            s_phi = covs[e] @ phi[e, i]
            covs[e] = covs[e] - np.outer(s_phi, s_phi) / (phi[e, i] @ s_phi + noise)
    return chosen
