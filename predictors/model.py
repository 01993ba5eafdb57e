"""The predictor network: an ensemble of graph encoders with target embeddings.

Member ``m`` maps an architecture graph to features ``phi_m(a) = [1, f_m(a)]``
and a target ``t`` (a device, or a task) to an embedding ``w_m[t]``; the
prediction is their dot product. Known targets have learned embeddings; a new
device or task gets one by Bayesian linear regression on a few measurements
(:mod:`predictors.calibration`) -- the model itself is never retrained. The
members' disagreement is the model part of the predictive spread.
"""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingPredictor(nn.Module):
    """``y[m, a, t] = w_m[t] . [1, f_m(a)]`` for ``members`` independently
    initialised encoders of type ``encoder`` with ``rank``-dim outputs."""

    def __init__(
        self,
        targets: list[str],
        encoder: str = "gin",
        members: int = 3,
        rank: int = 8,
        hidden: int = 64,
        seed: int = 0,
        **encoder_options,
    ):
        """``encoder_options``: what the encoder is built with beyond its widths
        (:func:`graph_encoders.encoder_options`: ``in_dim`` or ``options``)."""
        from graph_encoders import build_encoder  # a graph encoder imports torch_geometric here

        super().__init__()
        if members < 1 or rank < 1:
            raise ValueError(f"members and rank must be >= 1, got {members}, {rank}")
        self.targets = list(targets)
        self.config = {"encoder": encoder, "members": members, "rank": rank, "hidden": hidden, **encoder_options}
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.encoders = nn.ModuleList(
                build_encoder(encoder, hidden=hidden, out_dim=rank, **encoder_options) for _ in range(members)
            )
            self.weights = nn.Parameter(torch.randn(members, len(self.targets), rank + 1) / (rank + 1) ** 0.5)
        finally:
            torch.random.set_rng_state(generator_state)

    @property
    def members(self) -> int:
        return len(self.encoders)

    @property
    def reads_choices(self) -> bool:
        """Whether the encoders read option-index vectors (:mod:`graph_encoders.choices`)."""
        from graph_encoders import CHOICE_ENCODERS

        return self.config["encoder"] in CHOICE_ENCODERS

    def features(self, batch) -> torch.Tensor:
        """``[members, num_graphs, rank + 1]``: the constant 1 followed by ``f_m(a)``."""
        feats = torch.stack([enc(batch) for enc in self.encoders])
        return torch.cat([feats.new_ones(*feats.shape[:2], 1), feats], dim=2)

    def forward(self, batch) -> torch.Tensor:
        """``[members, num_graphs, num_targets]`` normalised predictions."""
        return torch.einsum("enr,etr->ent", self.features(batch), self.weights)


class PackedEmbeddingPredictor:
    """An :class:`EmbeddingPredictor` kept as its targets, config and state dict,
    built into the network only when an architecture must be encoded.

    Reading targets and their embeddings needs no network; building one imports
    torch_geometric (about 1.8 s). A bundle whose features are precomputed for
    every architecture of its space (:attr:`~predictors.predictor.MetricPredictor.feature_table`)
    therefore predicts, calibrates and generates without ever building it.
    """

    def __init__(self, targets: list[str], config: dict, state: dict[str, torch.Tensor]):
        self.targets = list(targets)
        self.config = dict(config)
        weights = state.get("weights")
        expected = (self.members, len(self.targets), int(self.config["rank"]) + 1)
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != expected:
            found = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            raise ValueError(f"target embeddings of shape {expected} expected, found {found}")
        self._state = state
        self._network: EmbeddingPredictor | None = None

    @property
    def members(self) -> int:
        return int(self.config["members"])

    reads_choices = EmbeddingPredictor.reads_choices

    @property
    def weights(self) -> torch.Tensor:
        return self._state["weights"]

    @property
    def network(self) -> EmbeddingPredictor:
        if self._network is None:
            network = EmbeddingPredictor(self.targets, **self.config)
            network.load_state_dict(self._state)
            self._network = network.eval()
        return self._network

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state

    def eval(self) -> PackedEmbeddingPredictor:
        return self

    def features(self, batch) -> torch.Tensor:
        return self.network.features(batch)
