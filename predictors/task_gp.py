"""A new task as a Gaussian process whose prior is learned across the pretrained tasks.

:func:`~predictors.calibration.calibrate_member` infers a new target as a linear head
on the network's features: a rescaled, slightly moved copy of the known targets' heads.
Tasks differ by more than that (TransNAS-Bench-101's six agree at Kendall 0.0 to 0.69),
so the task head here is a GP over architectures with the sum of two kernels, both
learned from the pretrained tasks:

- ``linear``: ``phi(a) S phi(a')``, the calibration's own prior (``S``:
  :func:`~predictors.calibration.prior_covariance` of the known heads), i.e. the linear
  head above as a kernel;
- ``tasks``: an RBF kernel between the pretrained tasks' predictions for ``a`` and
  ``a'``: architectures that the known tasks rank alike are alike for the new one too,
  without assuming the relation is linear.

The two weights and the noise are chosen by the marginal likelihood of the k labels
(a small grid: closed form, milliseconds). With one pretrained task (``anb``) or two
(NAS-Bench-201) the evidence leans on whichever kernel explains the labels, so the
head degrades to about the linear calibration rather than below it.
``python bench/transnas.py --part prior`` measures it: leaving each TransNAS task out,
k=20, mean Kendall 0.70 against 0.67 for the linear head and 0.58 for the best other task.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .calibration import CalibrationPrior, prior_covariance

#: candidate weights of the linear kernel and of the tasks kernel, and noise variances (the
#: labels are standardised). The linear kernel always takes part: where the labels look
#: like noise, the head stays the linear calibration's rather than predicting a constant,
#: which would rank nothing
LINEAR_WEIGHTS: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)
TASK_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)
NOISE_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class GPInputs:
    """What the kernels read of a set of architectures: features ``phi`` ``[members, n, p]``
    and the pretrained tasks' normalised predictions ``tasks`` ``[n, T]``."""

    phi: np.ndarray
    tasks: np.ndarray

    @classmethod
    def of(cls, phi: np.ndarray, known: np.ndarray) -> GPInputs:
        """From features and the known heads ``[members, T, p]``."""
        phi = np.asarray(phi, dtype=np.float64)
        return cls(phi, np.einsum("enp,etp->nt", phi, np.asarray(known, dtype=np.float64)) / len(phi))

    def take(self, rows) -> GPInputs:
        return GPInputs(self.phi[:, rows], self.tasks[rows])


@dataclass(frozen=True)
class TaskGP:
    """A calibrated task: GP posterior on the standardised labels of ``labelled``."""

    labelled: GPInputs
    covs: tuple[np.ndarray, ...]  # per member: the prior covariance S of the linear kernel
    linear_norm: float  # the linear kernel's mean diagonal on the labelled archs (so weights compare)
    weights: tuple[float, float]  # (linear, tasks)
    noise: float
    alpha: np.ndarray  # (K + noise I)^-1 y
    chol: np.ndarray  # cholesky(K + noise I)

    def kernel(self, a: GPInputs, b: GPInputs) -> np.ndarray:
        return _kernel(a, b, self.covs, self.linear_norm, self.weights)

    def predict(self, x: GPInputs) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (of a new label: noise included) at ``x``."""
        cross = self.kernel(x, self.labelled)
        mean = cross @ self.alpha
        solved = np.linalg.solve(self.chol, cross.T)
        prior_var = _diagonal(x, self.covs, self.linear_norm, self.weights)
        return mean, np.maximum(prior_var - (solved**2).sum(axis=0), 0.0) + self.noise


def _linear(a: GPInputs, b: GPInputs, covs) -> np.ndarray:
    return np.mean([a.phi[e] @ covs[e] @ b.phi[e].T for e in range(len(covs))], axis=0)


def _task_rbf(a: GPInputs, b: GPInputs) -> np.ndarray:
    dist = ((a.tasks[:, None, :] - b.tasks[None, :, :]) ** 2).sum(-1)
    return np.exp(-dist / (2.0 * a.tasks.shape[1]))


def _kernel(a: GPInputs, b: GPInputs, covs, norm: float, weights) -> np.ndarray:
    return weights[0] * _linear(a, b, covs) / norm + weights[1] * _task_rbf(a, b)


def _diagonal(a: GPInputs, covs, norm: float, weights) -> np.ndarray:
    linear = np.mean([np.einsum("np,pq,nq->n", a.phi[e], covs[e], a.phi[e]) for e in range(len(covs))], axis=0)
    return weights[0] * linear / norm + weights[1]


def fit_task_gp(labelled: GPInputs, known: np.ndarray, z: np.ndarray,
                prior: CalibrationPrior = CalibrationPrior()) -> TaskGP:
    """The task GP of standardised labels ``z`` (``[k]``) at ``labelled``, its weights and
    noise chosen by marginal likelihood over :data:`LINEAR_WEIGHTS` x :data:`TASK_WEIGHTS`
    x :data:`NOISE_GRID`."""
    z = np.asarray(z, dtype=np.float64)
    covs = tuple(prior_covariance(known[e], prior) for e in range(len(known)))
    linear = _linear(labelled, labelled, covs)
    norm = float(np.mean(np.diag(linear))) or 1.0
    parts = (linear / norm, _task_rbf(labelled, labelled))
    eye = np.eye(len(z))
    best = None
    for weights in itertools.product(LINEAR_WEIGHTS, TASK_WEIGHTS):
        gram0 = weights[0] * parts[0] + weights[1] * parts[1]
        for noise in NOISE_GRID:
            gram = gram0 + noise * eye
            try:
                chol = np.linalg.cholesky(gram)
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(gram, z)
            evidence = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
            if best is None or evidence > best[0]:
                best = (evidence, weights, noise, alpha, chol)
    _, weights, noise, alpha, chol = best
    return TaskGP(labelled, covs, norm, weights, noise, alpha, chol)
