"""Weights & Biases: offline unless the user has logged in (or set WANDB_MODE)."""

from __future__ import annotations

import netrc
import os
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
                 config: dict | None = None, job_type: str | None = None):
    """A Lightning ``WandbLogger`` writing under ``save_dir/wandb`` (offline by default)."""
    from lightning.pytorch.loggers import WandbLogger

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(project=project, name=name, save_dir=str(save_dir), mode=wandb_mode(),
                         job_type=job_type, config=config or {})
    return logger
