"""The pretraining job: a space's benchmark table -> a :class:`~archgen.bundle.Bundle`
(latency and accuracy predictors, then the generators)."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .bundle import Bundle
from .data import load_table
from .spaces import get_space

#: the generators a bundle ships by default
DEFAULT_GENERATORS: tuple[str, ...] = ("diffusion", "autoregressive")


def pretrain_bundle(
    space: str = "nb201",
    root: str | Path | None = None,
    *,
    devices: Sequence[str] | None = None,
    exclude_devices: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
    exclude_tasks: Sequence[str] = (),
    latency_config=None,
    accuracy_config=None,
    generators: Sequence[str] = DEFAULT_GENERATORS,
    generator_config=None,
    seed: int = 0,
    use_wandb: bool = False,
    run_dir: str | Path = "runs",
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    trainer_options: dict | None = None,
    command: str = "",
    reuse_latency=None,
    wandb_group: str | None = None,
) -> Bundle:
    """Pretrain the predictors (see :func:`predictors.pretrain.pretrain_predictors`;
    ``reuse_latency``: keep an earlier bundle's latency predictor) and train ``generators``
    on all architectures of ``space``'s table. Every model logs to its own W&B run when
    ``use_wandb``, all of them in one W&B group (``wandb_group``, default
    ``pretrain-<space>-<time>``: :func:`~archgen.tracking.run_group`; kept in ``meta``).
    ``trainer_options`` asking for an accelerator this machine lacks fail before any training."""
    from generators.model import GeneratorConfig, check_kind
    from generators.training import fit_generator
    from predictors.pretrain import pretrain_predictors

    from .training import check_accelerator

    sp = get_space(space)
    for kind in generators:
        check_kind(kind)
    options = trainer_options or {}
    check_accelerator(options.get("accelerator", "cpu"), options.get("devices", 1))
    if use_wandb and wandb_group is None:
        from .tracking import run_group

        wandb_group = run_group("pretrain", sp.name)
    generator_config = generator_config or GeneratorConfig()
    predictors, meta = pretrain_predictors(
        sp.name, root, devices=devices, exclude_devices=exclude_devices, tasks=tasks, exclude_tasks=exclude_tasks,
        latency_config=latency_config, accuracy_config=accuracy_config, seed=seed,
        use_wandb=use_wandb, run_dir=run_dir, progress=progress, checkpoint_dir=checkpoint_dir,
        trainer_options=trainer_options, reuse_latency=reuse_latency, wandb_group=wandb_group,
    )
    archs = list(load_table(sp.name, root).archs)
    trained = {}
    for kind in generators:
        logger = None
        if use_wandb:
            from .tracking import wandb_logger

            logger = wandb_logger(name=f"pretrain-{sp.name}-{kind}", save_dir=run_dir, job_type="pretrain",
                                  config={"space": sp.name, "kind": kind, "archs": len(archs), "seed": seed,
                                          **generator_config.to_dict()}, group=wandb_group)
        start = time.perf_counter()
        trained[kind] = fit_generator(sp, archs, kind, generator_config, seed=seed, logger=logger, progress=progress,
                                      checkpoint_dir=Path(checkpoint_dir) / kind if checkpoint_dir else None,
                                      trainer_options=trainer_options)
        meta["train_seconds"][kind] = round(time.perf_counter() - start, 1)
        if logger is not None:
            logger.experiment.summary["train_seconds"] = meta["train_seconds"][kind]
            logger.experiment.finish()
    from .costs import COST_NOTES

    notes = {**COST_NOTES, **load_table(sp.name, root).device_notes}
    meta.update({
        "device_notes": {d: notes[d] for d in meta["devices"] if d in notes},
        "command": command, "generators": list(generators), "generator_config": generator_config.to_dict(),
        "torch": str(torch.__version__), "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **({"wandb_group": wandb_group} if use_wandb else {}),
    })
    return Bundle(sp.name, predictors["latency"], predictors["accuracy"], trained, meta)
