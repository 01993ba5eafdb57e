"""A trained generator of one space: model + sampler + what it was trained on."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from archgen.errors import BundleError, UnknownNameError
from archgen.validation import check_fields, quote

from .autoregressive import AutoregressiveModel, AutoregressiveSampler
from .diffusion import DiffusionSampler, MaskedDiffusionModel
from .guidance import Reward, guided_sample
from .layout import LayoutTensors

#: generator kinds by name: model class and the sampler that drives it
GENERATORS = {
    "diffusion": (MaskedDiffusionModel, DiffusionSampler),
    "autoregressive": (AutoregressiveModel, AutoregressiveSampler),
}


def check_kind(kind: str) -> str:
    if kind not in GENERATORS:
        raise UnknownNameError("generator", kind, GENERATORS)
    return kind


@dataclass(frozen=True)
class GeneratorConfig:
    """How a generator is built and trained (``layers`` is used by diffusion only)."""

    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.05

    def to_dict(self) -> dict:
        return asdict(self)

    def model_options(self, kind: str) -> dict:
        return {"hidden": self.hidden, "layers": self.layers} if kind == "diffusion" else {"hidden": self.hidden}


def build_model(kind: str, layout: LayoutTensors, config: GeneratorConfig) -> torch.nn.Module:
    return GENERATORS[check_kind(kind)][0](layout, **config.model_options(kind))


def arch_digest(arch: str) -> int:
    """A stable signed 64-bit digest of an arch string (for training-set membership)."""
    return int.from_bytes(hashlib.blake2b(arch.encode(), digest_size=8).digest(), "little", signed=True)


@dataclass
class Generator:
    """A trained generator: ``sample`` returns arch strings of its space.

    ``training_digests`` holds :func:`arch_digest` of every training architecture,
    so novelty can be measured without storing the strings.
    """

    space: object
    kind: str
    model: torch.nn.Module
    config: GeneratorConfig
    training_digests: np.ndarray = field(repr=False)

    def sampler(self):
        return GENERATORS[self.kind][1](self.model)

    def sample_choices(self, n: int, reward: Reward | None = None, proposals: int = 4, seed: int = 0,
                       fixed: dict[int, int] | None = None, progress: bool = False) -> np.ndarray:
        """``[n, S]`` option indices (see :func:`~generators.guidance.guided_sample`)."""
        return guided_sample(self.sampler(), n, reward, proposals, seed, fixed=fixed, progress=progress)

    def sample(self, n: int, reward: Reward | None = None, proposals: int = 4, seed: int = 0) -> list[str]:
        """``n`` arch strings (duplicates possible), guided by ``reward`` over option indices."""
        return [self.space.decode_choices(row) for row in self.sample_choices(n, reward, proposals, seed).tolist()]

    def is_novel(self, archs: list[str]) -> np.ndarray:
        """Whether each arch string was absent from the training set."""
        return ~np.isin(np.array([arch_digest(a) for a in archs], dtype=np.int64), self.training_digests)


def pack_generator(g: Generator) -> dict:
    """Plain tensors, numbers and strings (loadable with ``weights_only=True``)."""
    return {
        "kind": g.kind, "config": g.config.to_dict(), "layout": LayoutTensors(g.space.decisions).signature,
        "state": {k: v.detach().clone() for k, v in g.model.state_dict().items()},
        "training_digests": torch.from_numpy(g.training_digests),
    }


def unpack_generator(space, d: dict, *, where: str = "generator") -> Generator:
    """The generator of :func:`pack_generator`'s dict. ``d`` comes from a file: its
    structure is checked first, and a wrong field is a :class:`~archgen.errors.BundleError`
    naming it (``where.field``)."""
    check_fields(d, where, {"kind": str, "config": dict, "layout": list, "state": dict,
                            "training_digests": torch.Tensor}, BundleError)
    if d["kind"] not in GENERATORS:
        raise BundleError(f"field {where}.kind must be one of {', '.join(GENERATORS)}, got {quote(d['kind'], 40)}")
    bad = [k for k, v in d["state"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise BundleError(f"field {where}.state must map parameter names to tensors; {quote(bad[0], 80)} does not")
    if d["training_digests"].dtype != torch.int64 or d["training_digests"].dim() != 1:
        raise BundleError(f"field {where}.training_digests must be a 1-D int64 tensor, got "
                          f"{d['training_digests'].dtype} of shape {tuple(d['training_digests'].shape)}")
    layout = LayoutTensors(space.decisions)
    if d["layout"] != layout.signature:
        raise BundleError(f"field {where}.layout: the {d['kind']} generator was trained on another "
                          f"{space.name} decision layout")
    try:
        config = GeneratorConfig(**d["config"])
    except TypeError as exc:
        raise BundleError(f"field {where}.config does not fit GeneratorConfig: {exc}") from None
    model = build_model(d["kind"], layout, config)
    model.load_state_dict(d["state"])
    return Generator(space, d["kind"], model.eval(), config, d["training_digests"].numpy())
