"""Weights & Biases: offline unless the user has logged in (or set WANDB_MODE)."""

from __future__ import annotations

import netrc
import os
import time
from pathlib import Path


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; ``online`` when an API key is configured; else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def wandb_logger(project: str = "archgen", name: str | None = None, save_dir: str | os.PathLike = ".",
                 config: dict | None = None, job_type: str | None = None, group: str | None = None):
    """A Lightning ``WandbLogger`` writing under ``save_dir/wandb`` (offline by default).
    ``group``: the W&B group the run belongs to, so that the several runs of one job
    (a pretraining's predictors and generators) show up together (:func:`run_group`)."""
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(project=project, name=name, save_dir=str(save_dir), mode=wandb_mode(),
                         job_type=job_type, config=config or {}, group=group)
    return logger


def run_group(job: str, space: str) -> str:
    """A W&B group name for one invocation of ``job`` on ``space``: ``pretrain-nb201-20250101-120000``."""
    return f"{job}-{space}-{time.strftime('%Y%m%d-%H%M%S')}"
