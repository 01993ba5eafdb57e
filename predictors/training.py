"""Lightning pieces for pretraining predictors on a benchmark table.

:class:`TableDataModule` serves (graph batch, target matrix) pairs from a list of
architectures and a ``[num_archs, num_targets]`` array (NaN = not measured);
:class:`PredictorModule` trains an :class:`~predictors.model.EmbeddingPredictor`
with a masked regression loss plus a pairwise ranking loss (what guides
generation is the *order* of architectures, so the order is trained directly).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from graph_encoders import make_batcher

from .model import EmbeddingPredictor


class TableDataModule(L.LightningDataModule):
    """Train/validation split of a table of architectures and targets, batched
    for ``encoder`` (graphs, or option-index vectors)."""

    def __init__(
        self,
        space,
        archs: list[str],
        targets: np.ndarray,
        batch_size: int = 256,
        val_fraction: float = 0.1,
        seed: int = 0,
        view: str = "full",
        encoder: str = "gin",
    ):
        super().__init__()
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim != 2 or targets.shape[0] != len(archs):
            raise ValueError(f"targets must be [num_archs={len(archs)}, num_targets], got {targets.shape}")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.archs = list(archs)
        self.targets = torch.from_numpy(targets)
        self.batch_size = batch_size
        self.batcher = make_batcher(space, view, encoder)
        perm = np.random.default_rng(seed).permutation(len(archs))
        n_val = int(round(val_fraction * len(archs))) if len(archs) >= 20 else 0
        self.val_idx, self.train_idx = perm[:n_val].tolist(), perm[n_val:].tolist()
        self.seed = seed

    def _collate(self, idx: list[int]):
        return self.batcher.batch([self.archs[i] for i in idx]), self.targets[idx]

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_idx, batch_size=self.batch_size, shuffle=True, generator=g,
                          collate_fn=self._collate)

    def val_dataloader(self):
        if not self.val_idx:
            return []
        return DataLoader(self.val_idx, batch_size=4096, collate_fn=self._collate)


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, partners: int = 64) -> torch.Tensor:
    """Logistic loss ``softplus(-sign(y_i - y_j) (p_i - p_j))`` over pairs in the batch,
    per target column: all pairs for small batches, else ``partners`` random
    partners per item (the cost stays linear in the batch size).

    ``pred`` ``[E, B, T]``; ``target``/``mask`` ``[B, T]``.
    """
    b = target.size(0)
    if b <= 2 * partners:
        j = torch.arange(b, device=target.device).expand(b, b)
    else:
        j = torch.randint(0, b, (b, partners), device=target.device)
    diff_t = target.unsqueeze(1) - target[j]  # [B, K, T]
    valid = (mask.unsqueeze(1) & mask[j] & (diff_t.abs() > 1e-6)).float()
    diff_p = pred.unsqueeze(2) - pred[:, j]  # [E, B, K, T]
    loss = torch.nn.functional.softplus(-torch.sign(diff_t) * diff_p) * valid
    return loss.sum() / (valid.sum() * pred.size(0)).clamp_min(1.0)


class PredictorModule(L.LightningModule):
    """Trains an ensemble predictor; targets are pre-normalised by the caller."""

    def __init__(
        self,
        targets: list[str],
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        mse_weight: float = 1.0,
        rank_weight: float = 0.0,
        seed: int = 0,
        **model_options,
    ):
        """``model_options`` (encoder, members, rank, hidden) go to :class:`EmbeddingPredictor`."""
        super().__init__()
        self.save_hyperparameters()
        self.model = EmbeddingPredictor(targets, seed=seed, **model_options)

    def forward(self, batch) -> torch.Tensor:
        return self.model(batch)

    def _losses(self, batch):
        graphs, y = batch
        mask = ~torch.isnan(y)
        y0 = torch.nan_to_num(y)
        pred = self.model(graphs)
        sq = ((pred - y0.unsqueeze(0)) ** 2) * mask.unsqueeze(0)
        mse = sq.sum() / (mask.sum() * pred.size(0)).clamp_min(1)
        rank = pairwise_rank_loss(pred, y0, mask) if self.hparams.rank_weight > 0 else pred.new_zeros(())
        if self.hparams.mse_weight == 0:
            mse = mse.detach()
        return mse, rank, y.size(0)

    def training_step(self, batch, batch_idx):
        mse, rank, n = self._losses(batch)
        loss = self.hparams.mse_weight * mse + self.hparams.rank_weight * rank
        self.log_dict({"train/mse": mse, "train/rank": rank, "train/loss": loss}, batch_size=n, prog_bar=False)
        return loss

    def validation_step(self, batch, batch_idx):
        mse, rank, n = self._losses(batch)
        self.log_dict({"val/mse": mse, "val/rank": rank, "val/loss": self.hparams.mse_weight * mse + self.hparams.rank_weight * rank},
                      batch_size=n, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.max_epochs or 1))
        return {"optimizer": opt, "lr_scheduler": sched}
