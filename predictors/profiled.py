"""A device from its kernel profile, corrected by whole-network measurements.

A profiled device predicts ``latency(a) = s(a) * c(a)``: ``s(a)`` the sum of the
network's kernel latencies (:class:`archgen.profiles.KernelProfile`), ``c(a)`` a
learned correction for what a sum of isolated kernels misses (layout conversions
between kernels, fusions across them, the machine's speed on the day). The
correction is Bayesian linear regression of the ratio ``y / s`` on ``[1, phi(a)]``,
``phi`` the pretrained latency predictor's features (standardised): with no
measurement it is 1 (the profile alone); each whole-network measurement moves it,
the pretrained features letting it differ between kinds of network. Prior scales
and noise are chosen by marginal likelihood on a grid, in closed form (milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: prior std of the overall ratio (measured / profile sum): the profile alone is right
#: to about this (NAS-Bench-201 on this project's 2-core VM: 10 % median error)
LEVEL_STD = 0.1
#: candidate prior variances of the feature weights (0: a constant ratio only)
FEATURE_VARS: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2)
#: candidate noise variances of the ratio
NOISE_VARS: tuple[float, ...] = (1e-4, 4e-4, 1e-3, 4e-3, 1e-2, 4e-2)
#: noise assumed with no measurement to infer it from (a 5 % retest spread)
DEFAULT_NOISE_VAR = 0.05**2


@dataclass(frozen=True)
class ProfileCorrection:
    """Posterior of the correction ``c(a) = [1, z(a)] . w`` (``z``: features standardised
    with ``centre`` and ``spread``)."""

    mean: np.ndarray
    cov: np.ndarray
    noise: float
    centre: np.ndarray
    spread: np.ndarray

    def design(self, phi: np.ndarray) -> np.ndarray:
        """``[n, 1 + p]`` design matrix of member-averaged features ``phi`` ``[n, p]``."""
        return np.column_stack([np.ones(len(phi)), (phi - self.centre) / self.spread])

    def predict(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the ratio for features ``phi`` ``[n, p]``."""
        x = self.design(phi)
        var = np.einsum("np,pq,nq->n", x, self.cov, x) + self.noise
        return x @ self.mean, np.sqrt(np.maximum(var, 0.0))


def fit_correction(phi_pool: np.ndarray, phi: np.ndarray, ratios: np.ndarray) -> ProfileCorrection:
    """The correction from measured ``ratios`` (measured / profile sum) of architectures
    with features ``phi`` ``[k, p]`` (``k`` may be 0); ``phi_pool`` ``[n, p]`` (a sample of
    the space) fixes the standardisation."""
    centre = phi_pool.mean(axis=0)
    spread = phi_pool.std(axis=0)
    spread = np.where(spread > 1e-9, spread, 1.0)
    dims = 1 + phi_pool.shape[1]
    best = None
    for feature_var in FEATURE_VARS if len(ratios) else (0.0,):
        prior_cov = np.diag([LEVEL_STD**2, *([feature_var] * (dims - 1))])
        prior_mean = np.zeros(dims)
        prior_mean[0] = 1.0
        for noise in NOISE_VARS if len(ratios) else (DEFAULT_NOISE_VAR,):
            corr = ProfileCorrection(prior_mean, prior_cov, noise, centre, spread)
            if not len(ratios):
                return corr
            x = corr.design(phi)
            k = x @ prior_cov @ x.T + noise * np.eye(len(ratios))
            r = ratios - x @ prior_mean
            solved = np.linalg.solve(k, np.column_stack([r, x @ prior_cov]))
            evidence = -0.5 * r @ solved[:, 0] - 0.5 * np.linalg.slogdet(k)[1]
            if best is None or evidence > best[0]:
                ps = prior_cov @ x.T
                best = (evidence, ProfileCorrection(prior_mean + ps @ solved[:, 0], prior_cov - ps @ solved[:, 1:],
                                                    noise, centre, spread))
    return best[1]
