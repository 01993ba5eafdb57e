"""Fitting a :class:`~predictors.predictor.MetricPredictor` on a table with Lightning."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch

from graph_encoders import CHOICE_ENCODERS

from .calibration import PRIOR_GRID, RELATIVE_FLOORS
from .predictor import MetricPredictor, encode, normalise, tabulable
from .training import PredictorModule, TableDataModule


@dataclass(frozen=True)
class FitConfig:
    """How to train one metric's predictor. Defaults suit latency; see
    :data:`LATENCY_FIT` and :data:`ACCURACY_FIT` for the shipped choices."""

    encoder: str = "gin"
    members: int = 3
    rank: int = 8
    hidden: int = 32
    epochs: int = 40
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    mse_weight: float = 1.0
    rank_weight: float = 0.0
    view: str = "full"
    val_fraction: float = 0.1
    #: choose the calibration prior by leave-one-target-out over the training
    #: targets (needs >= 3 of them)
    tune_prior: bool = True
    #: remember the training labels (:mod:`predictors.memory`): labelled
    #: architectures are then answered from them, the others by the network
    remember_labels: bool = False
    #: distil a feature student (:mod:`predictors.student`) from this many random
    #: architectures plus the table's, for guidance to score proposals with (0: none)
    student_archs: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """A short hash of the settings: caches keyed by it are never served stale."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


#: latency is close to additive in the ops, so plain regression of the ratio to
#: each device's mean latency on all ops of the graph
LATENCY_FIT = FitConfig()
#: accuracy depends on what reaches the output: read the pruned graph, and train
#: the order directly (a pairwise ranking loss beat MSE at 100 and 1,000 labels)
ACCURACY_FIT = FitConfig(hidden=64, epochs=40, batch_size=1024, lr=2e-3, mse_weight=0.0, rank_weight=1.0, view="pruned")


#: tables below this many architectures (FBNet, MobileNetV3: 5,000) train longer on smaller batches
SMALL_TABLE = 10_000
#: the latency encoder of a small table: FBNet's and MobileNetV3's 20-odd layers
#: each add their own cost per device, which hidden 32 / rank 8 underfits. Chosen
#: on FBNet's fold-0 devices of ``bench/spaces.py --part latency`` (k=10 mean
#: Spearman 0.917 at 32/8, 0.929 at 64/16, 0.930 at 64/24, 0.933 at 96/16)
SMALL_TABLE_LATENCY_WIDTH = {"hidden": 96, "rank": 16}


#: the accuracy predictor pretrained on every label of a large table (NAS-Bench-201's
#: 15,625): the few-label settings of :data:`ACCURACY_FIT` underfit the order among
#: the best architectures, which is what a budgeted request ranks. Chosen on the
#: VALIDATION devices of ``bench/generate.py --part accuracy``: with true latencies,
#: the best predicted CIFAR-100 architecture under budgets at their 10th..90th
#: latency percentiles was 0.52 points below the best there (hidden 64, 40 epochs),
#: 0.39 (100 epochs), 0.37 (hidden 128), 0.28 (both). With every label at hand it
#: also remembers them (:mod:`predictors.memory`)
FULL_TABLE_ACCURACY = {"hidden": 128, "epochs": 100, "remember_labels": True}


#: random architectures a feature student learns from (besides the table's)
STUDENT_ARCHS = 20_000


def for_table(config: FitConfig, num_archs: int, kind: str = "latency", space=None) -> FitConfig:
    """``config`` as used for pretraining on a table of ``num_archs`` architectures:
    the shipped settings were tuned on NAS-Bench-201's 15,625, where 40 epochs of
    large batches are ~1,200 optimizer steps; a 5,000-arch table gets 100 epochs
    of 128 (~3,500 steps), without which the GNN underfits (held-out Spearman 0.54
    vs 0.84 on OFA's titan_rtx_1, k=10). Its ``latency`` encoder is also wider
    (:data:`SMALL_TABLE_LATENCY_WIDTH`); a large table's ``accuracy`` predictor is
    wider and trains longer (:data:`FULL_TABLE_ACCURACY`). With ``space``, an accuracy
    predictor reads the space's :attr:`~archgen.spaces.base.SearchSpace.accuracy_encoder`
    (a latency predictor its ``latency_encoder``),
    and a graph predictor in a space too large to tabulate gets a feature student
    (:data:`STUDENT_ARCHS` random architectures) so
    that guidance can score thousands of proposals a second."""
    if kind not in ("latency", "accuracy"):
        raise ValueError(f"kind must be 'latency' or 'accuracy', got {kind!r}")
    if space is not None:
        config = replace(config, encoder=space.accuracy_encoder if kind == "accuracy" else space.latency_encoder)
    if space is not None and not tabulable(space) and config.student_archs == 0 \
            and config.encoder not in CHOICE_ENCODERS:
        config = replace(config, student_archs=STUDENT_ARCHS)
    if num_archs >= SMALL_TABLE:
        if kind == "accuracy":
            return replace(config, **{k: max(getattr(config, k), v) for k, v in FULL_TABLE_ACCURACY.items()})
        return config
    wider = {k: max(getattr(config, k), v) for k, v in SMALL_TABLE_LATENCY_WIDTH.items()} if kind == "latency" else {}
    return replace(config, epochs=max(config.epochs, 100), batch_size=min(config.batch_size, 128), **wider)


def fit_predictor(
    space,
    archs: list[str],
    targets: dict[str, np.ndarray],
    *,
    kind: str,
    unit: str,
    normalisation: str,
    config: FitConfig = LATENCY_FIT,
    seed: int = 0,
    logger=None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    trainer_options: dict | None = None,
) -> MetricPredictor:
    """Train an ensemble on ``targets`` (name -> values per arch, NaN = unknown).

    After training, each member's target embeddings are refitted by least
    squares on the training rows (only an affine map of its output per target),
    which gives ranking-trained models real units; the residual on the
    validation rows becomes each target's noise level.
    """
    names = list(targets)
    if not names:
        raise ValueError("fit_predictor needs at least one target")
    columns, norms = [], {}
    for name in names:
        z, offset, scale = normalise(np.asarray(targets[name], dtype=np.float64), normalisation)
        columns.append(z)
        norms[name] = (offset, scale)
    y = np.stack(columns, axis=1)
    L.seed_everything(seed, workers=True, verbose=False)
    from graph_encoders import encoder_options

    data = TableDataModule(space, archs, y, batch_size=config.batch_size, val_fraction=config.val_fraction,
                           seed=seed, view=config.view, encoder=config.encoder)
    module = PredictorModule(names, encoder=config.encoder, members=config.members, rank=config.rank,
                             hidden=config.hidden, lr=config.lr, weight_decay=config.weight_decay,
                             mse_weight=config.mse_weight, rank_weight=config.rank_weight, seed=seed,
                             **encoder_options(space, config.encoder))
    callbacks = []
    if checkpoint_dir is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), filename=f"{kind}-{{epoch}}",
                                         monitor="val/loss" if data.val_idx else None, save_last=True))
    steps_per_epoch = max(1, -(-len(data.train_idx) // config.batch_size))
    trainer = L.Trainer(
        max_epochs=config.epochs, logger=logger if logger is not None else False,
        log_every_n_steps=min(50, steps_per_epoch),
        callbacks=callbacks, enable_checkpointing=bool(callbacks), enable_progress_bar=progress,
        enable_model_summary=False, deterministic=True, num_sanity_val_steps=0,
        **{"accelerator": "cpu", "devices": 1, **(trainer_options or {})},
    )
    trainer.fit(module, data)
    model = module.model.cpu().eval()  # predictors run on the CPU whatever trained them
    phi = encode(model, data.batcher, archs)
    weights = model.weights.detach().double().numpy()
    train_idx, val_idx = np.array(data.train_idx), np.array(data.val_idx, dtype=int)
    noise = {}
    for t, name in enumerate(names):
        rows = train_idx[np.isfinite(y[train_idx, t])]
        vrows = val_idx[np.isfinite(y[val_idx, t])] if len(val_idx) else rows
        residuals = []
        for e in range(model.members):
            a, b = np.polyfit(phi[e, rows] @ weights[e, t], y[rows, t], 1)
            weights[e, t] = a * weights[e, t]
            weights[e, t, 0] += b
            residuals.append(y[vrows, t] - phi[e, vrows] @ weights[e, t])
        mean_res = np.mean(residuals, axis=0)
        noise[name] = float(np.sqrt(np.mean(mean_res**2)))
    with torch.no_grad():
        model.weights.copy_(torch.from_numpy(weights).to(model.weights.dtype))
    predictor = MetricPredictor(
        space=space, model=model, kind=kind, unit=unit, normalisation=normalisation, view=config.view,
        norms={n: (norms[n][0], norms[n][1], noise[n]) for n in names},
    )
    if tabulable(space):
        predictor.precompute_features(archs, phi)
    if config.remember_labels:
        predictor.remember_labels(archs, targets)
    if config.student_archs:
        add_student(predictor, archs, config.student_archs, phi, seed=seed, progress=progress)
    if config.tune_prior:
        floors = RELATIVE_FLOORS if normalisation == "ratio" else (None,)
        predictor.tune_prior(archs, targets, [replace(p, relative_floor=f) for p in PRIOR_GRID for f in floors])
    return predictor


def add_student(predictor: MetricPredictor, archs: list[str], count: int = STUDENT_ARCHS,
                features: np.ndarray | None = None, *, seed: int = 0, progress: bool = True) -> MetricPredictor:
    """Distil ``predictor``'s feature student (:mod:`predictors.student`) from
    ``archs`` (its table; ``features`` of them where already encoded) and ``count``
    random architectures of its space, all encoded by its network."""
    from .student import StudentConfig, fit_student

    space, known = predictor.space, set(archs)
    extra = [a for a in space.sample(count, seed=seed) if a not in known]
    phi = features if features is not None else predictor.features(list(archs))
    teacher = np.concatenate([phi, encode(predictor.model, predictor.batcher, extra)], axis=1)
    predictor.student = fit_student(space, [*archs, *extra], teacher, StudentConfig(archs=count), seed=seed,
                                    progress=progress)
    return predictor
