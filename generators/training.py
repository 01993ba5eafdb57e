"""Training a generator on a space's architectures with Lightning."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .layout import LayoutTensors
from .model import Generator, GeneratorConfig, arch_digest, build_model, check_kind


class ChoiceDataModule(L.LightningDataModule):
    """Option-index vectors of a list of architectures, with a seeded validation split."""

    def __init__(self, space, archs: list[str], batch_size: int = 256, val_fraction: float = 0.05, seed: int = 0):
        super().__init__()
        if not archs:
            raise ValueError("a generator needs at least one training architecture")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.choices = torch.tensor([space.encode_choices(a) for a in archs], dtype=torch.long)
        perm = np.random.default_rng(seed).permutation(len(archs))
        n_val = int(round(val_fraction * len(archs))) if len(archs) >= 40 else 0
        self.val_idx, self.train_idx = perm[:n_val], perm[n_val:]
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(TensorDataset(self.choices[self.train_idx]), batch_size=self.batch_size, shuffle=True, generator=g)

    def val_dataloader(self):
        if len(self.val_idx) == 0:
            return []
        return DataLoader(TensorDataset(self.choices[self.val_idx]), batch_size=4096)


class GeneratorModule(L.LightningModule):
    """Maximum-likelihood training (negative ELBO for diffusion) of a generator model."""

    def __init__(self, model: torch.nn.Module, kind: str, lr: float = 2e-3, weight_decay: float = 1e-4):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def training_step(self, batch, batch_idx):
        loss = self.model.loss(batch[0])
        self.log("train/nll", loss, batch_size=batch[0].size(0), prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/nll", self.model.loss(batch[0]), batch_size=batch[0].size(0), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1))
        return {"optimizer": opt, "lr_scheduler": sched}


def fit_generator(
    space,
    archs: list[str],
    kind: str,
    config: GeneratorConfig = GeneratorConfig(),
    *,
    seed: int = 0,
    logger=None,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    trainer_options: dict | None = None,
) -> Generator:
    """Train a ``kind`` generator on ``archs`` (arch strings of ``space``)."""
    check_kind(kind)
    L.seed_everything(seed, workers=True, verbose=False)
    layout = LayoutTensors(space.decisions)
    data = ChoiceDataModule(space, archs, config.batch_size, config.val_fraction, seed)
    module = GeneratorModule(build_model(kind, layout, config), kind, config.lr, config.weight_decay)
    callbacks = []
    if checkpoint_dir is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), filename=f"{kind}-{{epoch}}",
                                         monitor="val/nll" if len(data.val_idx) else None, save_last=True))
    steps = max(1, -(-len(data.train_idx) // config.batch_size))
    trainer = L.Trainer(
        max_epochs=config.epochs, logger=logger if logger is not None else False,
        log_every_n_steps=min(50, steps), callbacks=callbacks, enable_checkpointing=bool(callbacks),
        enable_progress_bar=progress, enable_model_summary=False, deterministic=True,
        **{"accelerator": "cpu", "devices": 1, **(trainer_options or {})},
    )
    trainer.fit(module, datamodule=data)
    digests = np.unique(np.array([arch_digest(a) for a in archs], dtype=np.int64))
    return Generator(space, kind, module.model.cpu().eval(), config, digests)
