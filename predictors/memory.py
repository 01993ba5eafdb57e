"""What a predictor remembers of its pretraining labels: a random effect per graph.

A ranking-trained GNN gets the order of a space right in the large but not among
its best architectures, where a budgeted request decides (NAS-Bench-201: with
true latencies, the best predicted CIFAR-100 architecture under budget is 0.43
points below the best there). Where a pretraining label exists it says more than
the network, so we model a label as

    z(a) = f(a) + u[c(a)] + e,   u[c] ~ N(0, tau2),   e ~ N(0, sigma2),

with ``f`` the network, ``c(a)`` the class of the graph the network reads (the
canonical hash of the architecture's full or pruned graph: architectures that
differ only in dead ops share one), ``u`` what the network misses for that graph
and ``e`` the label's own noise (training seeds). ``sigma2`` is the pooled
variance of labels within classes, ``tau2`` what remains of the residual variance
(method of moments); the posterior of ``u[c]`` from the class's ``n`` residuals is
the usual shrunken mean. Each labelled architecture is answered from it;
architectures without a label keep the network's prediction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

#: variance floor (normalised units) where the data cannot estimate one
MIN_VARIANCE = 1e-6


@dataclass(frozen=True)
class LabelMemory:
    """Posterior of the label of each remembered architecture, per target.

    ``ids``: the labelled architectures (their :meth:`index_of` in an enumerable
    space, else their canonical strings); ``shift`` / ``var``: ``[targets, ids]``
    posterior mean and variance of ``u`` for the architecture's class (normalised
    units; NaN where it has no label for the target); ``label_var``: ``[targets]``
    the labels' own noise ``sigma2``.
    """

    targets: tuple[str, ...]
    ids: tuple
    shift: np.ndarray
    var: np.ndarray
    label_var: np.ndarray

    def __post_init__(self):
        shape = (len(self.targets), len(self.ids))
        if self.shift.shape != shape or self.var.shape != shape or self.label_var.shape != shape[:1]:
            raise ValueError(f"label memory arrays do not match {shape[0]} targets x {shape[1]} architectures")
        object.__setattr__(self, "_column", {k: i for i, k in enumerate(self.ids)})

    def lookup(self, target: str, ids: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(known, shift, var)`` for the architectures ``ids``: ``known`` marks those
        remembered for ``target``; ``var`` is the predictive variance of their label
        (posterior of ``u`` plus the label noise)."""
        t = self.targets.index(target)
        cols = np.array([self._column.get(k, -1) for k in ids], dtype=np.int64)
        shift = np.where(cols >= 0, self.shift[t, cols], np.nan)
        known = np.isfinite(shift)
        var = np.where(known, self.var[t, cols] + self.label_var[t], np.nan)
        return known, np.where(known, shift, 0.0), var

    # -- bundle form: tensors, numbers and strings only -----------------------------------
    def to_dict(self) -> dict:
        import torch

        numeric = all(isinstance(i, int) for i in self.ids)
        return {"targets": list(self.targets),
                "ids": torch.tensor(self.ids, dtype=torch.int64) if numeric else "\n".join(self.ids),
                "shift": torch.from_numpy(self.shift.astype(np.float32)),
                "var": torch.from_numpy(self.var.astype(np.float32)),
                "label_var": torch.from_numpy(self.label_var.astype(np.float64))}

    @classmethod
    def from_dict(cls, d: dict) -> LabelMemory:
        ids = d["ids"]
        ids = tuple(ids.split("\n")) if isinstance(ids, str) else tuple(ids.tolist())
        return cls(tuple(d["targets"]), ids, d["shift"].double().numpy(), d["var"].double().numpy(),
                   d["label_var"].double().numpy())


def fit_label_memory(targets: list[str], ids: list, classes: list[str], labels: np.ndarray,
                     predictions: np.ndarray) -> LabelMemory:
    """The memory of ``labels`` ``[n, targets]`` (normalised, NaN = unlabelled) of
    the architectures ``ids`` in graph classes ``classes``, given the network's
    ``predictions`` (same shape): per target, ``sigma2`` from the spread of labels
    within classes of two or more, ``tau2`` from what remains of the class-mean
    residuals."""
    labels, predictions = np.asarray(labels, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    n = len(ids)
    if len(classes) != n or labels.shape != (n, len(targets)) or predictions.shape != labels.shape:
        raise ValueError(f"{n} ids, {len(classes)} classes, labels {labels.shape} and predictions "
                         f"{predictions.shape}: labels and predictions must both be {(n, len(targets))}")
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(classes):
        members[c].append(i)
    shift = np.full((len(targets), n), np.nan)
    var = np.full_like(shift, np.nan)
    label_var = np.zeros(len(targets))
    for t in range(len(targets)):
        within, dof, groups = 0.0, 0, []
        for rows in members.values():
            rows = np.array(rows)
            rows = rows[np.isfinite(labels[rows, t])]
            if len(rows):
                y = labels[rows, t]
                within += float(((y - y.mean()) ** 2).sum())
                dof += len(rows) - 1
                groups.append((rows, float((y - predictions[rows, t]).mean())))
        if not groups:
            continue
        sigma2 = max(within / dof, MIN_VARIANCE) if dof else MIN_VARIANCE
        counts = np.array([len(r) for r, _ in groups])
        means = np.array([m for _, m in groups])
        tau2 = max(float(np.mean(means**2 - sigma2 / counts)), MIN_VARIANCE)
        for (rows, mean), count in zip(groups, counts):
            shift[t, rows] = count * tau2 * mean / (count * tau2 + sigma2)
            var[t, rows] = tau2 * sigma2 / (count * tau2 + sigma2)
        label_var[t] = sigma2
    keep = np.isfinite(shift).any(axis=0)
    return LabelMemory(tuple(targets), tuple(ids[i] for i in np.flatnonzero(keep)), shift[:, keep], var[:, keep],
                       label_var)
