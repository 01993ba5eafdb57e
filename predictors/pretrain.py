"""Pretraining the predictors of a space on its benchmark table."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from archgen.complexity import PROXY_TASK, proxy_scores
from archgen.costs import cost_targets
from archgen.data import load_table
from archgen.errors import UnknownNameError
from archgen.spaces import get_space

from .fit import ACCURACY_FIT, LATENCY_FIT, FitConfig, add_student, fit_predictor, for_table
from .predictor import label_domain


def _select(kind: str, available: list[str], wanted: Sequence[str] | None, excluded: Sequence[str]) -> list[str]:
    for name in [*(wanted or []), *excluded]:
        if name not in available:
            raise UnknownNameError(kind, name, available)
    chosen = [n for n in (wanted or available) if n not in set(excluded)]
    if not chosen:
        raise ValueError(f"no {kind} left to pretrain on after excluding {list(excluded)}")
    return chosen


def _reused(predictor, space, devices: list[str], config: FitConfig, archs: list[str], seed: int, progress: bool):
    if predictor.space.name != space.name:
        raise ValueError(f"the reused latency predictor is for space {predictor.space.name!r}, not {space.name!r}")
    if sorted(predictor.known_targets) != sorted(devices):
        raise ValueError(f"the reused latency predictor knows devices {sorted(predictor.known_targets)}, "
                         f"the table (after --devices/--exclude-devices) {sorted(devices)}")
    if config.student_archs and predictor.student is None:
        add_student(predictor, archs, config.student_archs, seed=seed, progress=progress)
    return predictor


def pretrain_predictors(
    space: str = "nb201",
    root: str | Path | None = None,
    *,
    devices: Sequence[str] | None = None,
    exclude_devices: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
    exclude_tasks: Sequence[str] = (),
    latency_config: FitConfig | None = None,
    accuracy_config: FitConfig | None = None,
    seed: int = 0,
    use_wandb: bool = False,
    run_dir: str | Path = "runs",
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    trainer_options: dict | None = None,
    reuse_latency=None,
    wandb_group: str | None = None,
) -> tuple[dict, dict]:
    """Train the latency predictor on ``devices`` and the accuracy predictor on
    ``tasks`` of ``space``'s table (all, minus the excluded ones); a table without
    latencies trains it on the costs of :mod:`archgen.costs` instead. Returns
    ``({"latency": ..., "accuracy": ...}, meta)``. Configs left as None are the
    shipped ones (:data:`~predictors.fit.LATENCY_FIT`, :data:`~predictors.fit.ACCURACY_FIT`)
    sized for the table (:func:`~predictors.fit.for_table`). ``trainer_options`` go to every
    Lightning ``Trainer`` (e.g. ``accelerator``, ``devices``, ``strategy``,
    ``num_nodes``; default one CPU process). ``reuse_latency``: a latency predictor
    already trained on this table (an earlier bundle's) kept as it is, given a
    feature student if its config asks for one and it has none: adding a task then
    retrains nothing on the latency side. ``wandb_group``: the W&B group of the runs
    (with ``use_wandb``), so one pretraining's runs show up together."""
    sp = get_space(space)
    table = load_table(sp.name, root)
    archs = list(table.archs)
    latencies = {d: table.latency(d) for d in table.devices}
    if not latencies:  # a table without latencies (TransNAS-Bench-101): device-independent costs stand in
        latencies = cost_targets(sp, archs)
    devices = _select(f"device of the {sp.name} table", list(latencies), devices, exclude_devices)
    # rows without any accuracy label (FBNet: all; MobileNetV3: the 5,000 latency rows)
    # keep the training-free proxy as a task that is known everywhere
    accuracies = dict(table.accuracies)
    labelled = np.zeros(len(archs), dtype=bool)
    for values in accuracies.values():
        labelled |= np.isfinite(values)
    if not labelled.all():
        accuracies[PROXY_TASK] = proxy_scores(sp, archs)
    tasks = _select(f"task of the {sp.name} table", sorted(accuracies), tasks, exclude_tasks)
    latency_config = latency_config or for_table(LATENCY_FIT, len(archs), space=sp)
    accuracy_config = accuracy_config or for_table(ACCURACY_FIT, len(archs), "accuracy", space=sp)
    timings = {}
    predictors = {}
    for kind, names, config, unit, norm in (
        ("latency", devices, latency_config, "ms", "ratio"),
        ("accuracy", tasks, accuracy_config, "%", "standard"),
    ):
        logger = None
        if use_wandb:
            from archgen.tracking import wandb_logger

            logger = wandb_logger(name=f"pretrain-{sp.name}-{kind}", save_dir=run_dir, job_type="pretrain",
                                  config={"space": sp.name, "kind": kind, "targets": names, "seed": seed,
                                          **config.to_dict()}, group=wandb_group)
        start = time.perf_counter()
        values = {n: (latencies[n] if kind == "latency" else accuracies[n]) for n in names}
        if kind == "latency" and reuse_latency is not None:
            predictors[kind] = _reused(reuse_latency, sp, names, config, archs, seed, progress)
            timings[kind] = round(time.perf_counter() - start, 1)
            continue
        predictors[kind] = fit_predictor(
            sp, archs, values, kind=kind, unit=unit, normalisation=norm, config=config, seed=seed,
            logger=logger, progress=progress,
            checkpoint_dir=Path(checkpoint_dir) / kind if checkpoint_dir else None, trainer_options=trainer_options,
        )
        if kind == "accuracy":  # where every label shares a decision (OFA ImageNet: r224), stay there
            predictors[kind].domains = {n: d for n in names if (d := label_domain(sp, archs, values[n]))}
        timings[kind] = round(time.perf_counter() - start, 1)
        if logger is not None:
            logger.experiment.summary["train_seconds"] = timings[kind]
            logger.experiment.finish()
    meta = {
        "seed": seed, "devices": devices, "tasks": tasks,
        "excluded_devices": list(exclude_devices), "excluded_tasks": list(exclude_tasks),
        "latency_config": latency_config.to_dict(), "accuracy_config": accuracy_config.to_dict(),
        "train_seconds": timings,
    }
    return predictors, meta
