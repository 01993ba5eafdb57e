"""A fast student of a graph predictor's features, for scoring proposals while generating.

A guided request in a space too large to enumerate scores tens of thousands of
architectures nobody encoded before; the graph network costs about 0.4 ms each on
a CPU core (about 20 s a request), and reading decisions directly loses accuracy
(``bench/anb.py --part accuracy``: Kendall 0.74 against the GNN's 0.87 from 100
ImageNet labels). So the student learns the *graph network's features*
``phi_m(a)``, member by member, from the option vectors of many random
architectures (the teacher labels them; no benchmark label is needed): every
target, pretrained or calibrated later, then reads the student's features through
its own embedding, exactly as it reads the teacher's. Generation steers with the
student (:meth:`~predictors.predictor.MetricPredictor.predict_choices`) and
filters and ranks its distinct samples with the graph network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class StudentConfig:
    """``archs`` random architectures (plus the table's) labelled by the teacher;
    the student's widths and its training."""

    archs: int = 20_000
    #: 128 keeps three members' students near 0.7 MB in a bundle
    hidden: int = 128
    embed: int = 16
    epochs: int = 60
    batch_size: int = 512
    lr: float = 2e-3

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureStudent(nn.Module):
    """``[n, S]`` option indices -> ``[members, n, p]`` features (the constant 1, then ``rank`` learned)."""

    def __init__(self, options: list[int], members: int, rank: int, hidden: int = 128, embed: int = 16):
        from graph_encoders.choices import ChoiceEncoder

        super().__init__()
        self.config = {"options": [int(o) for o in options], "members": members, "rank": rank,
                       "hidden": hidden, "embed": embed}
        self.r2: float | None = None  # set by fit_student
        self.encoders = nn.ModuleList(ChoiceEncoder(options, hidden=hidden, out_dim=rank, embed=embed)
                                      for _ in range(members))
        # the teacher's features per member: the encoders learn them standardised, since
        # a feature can vary by 0.2% around a mean of 2 (a ranking-trained latency GNN)
        self.register_buffer("mean", torch.zeros(members, 1, rank))
        self.register_buffer("scale", torch.ones(members, 1, rank))

    def standardised(self, batch) -> torch.Tensor:
        """``[members, n, rank]`` features in the teacher's standard units."""
        return torch.stack([enc(batch) for enc in self.encoders])

    def features(self, batch) -> torch.Tensor:
        feats = self.standardised(batch) * self.scale + self.mean
        return torch.cat([feats.new_ones(*feats.shape[:2], 1), feats], dim=2)

    forward = features


def fit_student(space, archs: list[str], teacher_features: np.ndarray, config: StudentConfig = StudentConfig(),
                seed: int = 0, progress: bool = True) -> FeatureStudent:
    """Train a :class:`FeatureStudent` on ``archs`` and the teacher's ``[members, n, p]``
    features of them (MSE on each feature standardised over ``archs``). Its :attr:`~FeatureStudent.r2`
    is the share of the features' variance it reproduces on 5% of ``archs`` held out."""
    from tqdm.auto import tqdm

    from graph_encoders.choices import ChoiceBatch

    members, n, p = teacher_features.shape
    x = torch.tensor([space.encode_choices(a) for a in archs], dtype=torch.long)
    raw = torch.from_numpy(teacher_features[:, :, 1:].astype(np.float64))  # [members, n, rank]
    mean, scale = raw.mean(1, keepdim=True), raw.std(1, keepdim=True).clamp_min(1e-12)
    y = ((raw - mean) / scale).float()
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, n // 20)
    val, train = perm[:n_val], perm[n_val:]
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        student = FeatureStudent([len(o) for o in space.decisions.options], members, p - 1,
                                 hidden=config.hidden, embed=config.embed)
    finally:
        torch.random.set_rng_state(state)
    student.mean.copy_(mean.float())
    student.scale.copy_(scale.float())
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    for _ in tqdm(range(config.epochs), desc="distilling the guide", disable=not progress, leave=False):
        student.train()
        for i in range(0, len(train), config.batch_size):
            idx = train[i: i + config.batch_size]
            loss = ((student.standardised(ChoiceBatch(x[idx])) - y[:, idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        train = train[torch.randperm(len(train), generator=gen)]
    student.eval()
    with torch.no_grad():
        err = ((student.standardised(ChoiceBatch(x[val])) - y[:, val]) ** 2).mean()
        student.r2 = 1.0 - float(err / ((y[:, val] - y[:, val].mean(1, keepdim=True)) ** 2).mean())
    return student


def pack_student(student: FeatureStudent | None) -> dict | None:
    if student is None:
        return None
    return {"config": dict(student.config), "r2": student.r2,
            "state": {k: v.detach().clone() for k, v in student.state_dict().items()}}


def unpack_student(d: dict | None) -> FeatureStudent | None:
    if d is None:
        return None
    student = FeatureStudent(**d["config"])
    student.load_state_dict(d["state"])
    student.r2 = d.get("r2")
    return student.eval()
