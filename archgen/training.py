"""Training a candidate architecture on real data with the Lightning ``Trainer``.

Data: ``"digits"`` (scikit-learn's bundled 8x8 handwritten digits, 1,797 real
images, upsampled to the space's input size), an ``.npz`` file with ``images``
(N, H, W[, C] or N, C, H, W) and ``labels``, or a folder with one sub-folder of
images per class. The split is a seeded stratified 70/15/15 train/val/test.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L

import numpy as np
import torch

from .errors import AcceleratorError, DataError, RequestError
from .threads import check_threads, torch_threads

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageDataset:
    """Images as float32 ``[N, C, H, W]`` in [0, 1] and int64 labels ``0..classes-1``."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    source: str


def _check(images: np.ndarray, labels: np.ndarray, source: str, num_classes: int | None) -> None:
    if images.ndim != 4 or len(images) == 0:
        raise DataError(f"{source}: expected a non-empty stack of images, got shape {images.shape}")
    if labels.shape != (len(images),):
        raise DataError(f"{source}: {len(images)} images but labels of shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes):
        bad = int(labels[(labels < 0) | (labels >= (num_classes or np.inf))][0])
        allowed = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise DataError(f"{source}: label {bad} is out of range (allowed {allowed})")
    if not np.isfinite(images).all():
        raise DataError(f"{source}: images contain NaN or infinite values")


def _from_npz(path: Path, num_classes: int | None) -> ImageDataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            x_key = next((k for k in ("images", "x", "X") if k in keys), None)
            y_key = next((k for k in ("labels", "y") if k in keys), None)
            if x_key is None or y_key is None:
                raise DataError(f"{path}: needs arrays 'images' and 'labels' (found {', '.join(sorted(keys))})")
            images, labels = np.asarray(f[x_key], dtype=np.float32), np.asarray(f[y_key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.size and images.max() > 1.0:
        images = images / 255.0
    _check(images, labels, str(path), num_classes)
    classes = [str(c) for c in range(int(labels.max()) + 1 if num_classes is None else num_classes)]
    return ImageDataset(images, labels.astype(np.int64), classes, str(path))


def _from_folder(path: Path) -> ImageDataset:
    from PIL import Image, UnidentifiedImageError

    try:
        class_dirs = sorted(d for d in path.iterdir() if d.is_dir())
    except OSError as exc:
        raise DataError(f"cannot read dataset folder {path}: {exc}") from None
    if len(class_dirs) < 2:
        raise DataError(f"{path}: expected one sub-folder of images per class (at least 2), found {len(class_dirs)}")
    images, labels, size = [], [], None
    for label, folder in enumerate(class_dirs):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for file in files:
            try:
                with Image.open(file) as img:
                    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"cannot read image {file}: {exc}") from None
            if size is None:
                size = rgb.shape
            elif rgb.shape != size:
                raise DataError(f"images of mixed sizes: {file} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                f"earlier ones are {size[1]}x{size[0]}; resize them to one size")
            images.append(rgb.transpose(2, 0, 1))
            labels.append(label)
    return ImageDataset(np.stack(images), np.array(labels, dtype=np.int64), [d.name for d in class_dirs], str(path))


def load_images(source: str | os.PathLike = "digits", num_classes: int | None = None) -> ImageDataset:
    """The dataset named by ``source`` (see the module docstring)."""
    if str(source) == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = (d.images / 16.0).astype(np.float32)[:, None]
        return ImageDataset(images, d.target.astype(np.int64), [str(c) for c in range(10)], "digits")
    path = Path(source)
    if not path.exists():
        raise DataError(f"dataset {str(source)!r} does not exist (give 'digits', an .npz file or a folder)")
    if path.is_dir():
        data = _from_folder(path)
        _check(data.images, data.labels, str(path), num_classes)
        return data
    if path.suffix != ".npz":
        raise DataError(f"{path}: expected an .npz file or a folder of class sub-folders")
    return _from_npz(path, num_classes)


def _prepare(data: ImageDataset, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """Images resized to the network's input (channels repeated or averaged as needed)."""
    x = torch.from_numpy(data.images)
    c, h, w = input_shape
    if x.shape[1] != c:
        x = x.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) if c != 1 else x.mean(dim=1, keepdim=True)
    if x.shape[2:] != (h, w):
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5


def split_indices(labels: np.ndarray, seed: int, fractions=(0.7, 0.15, 0.15)) -> tuple[np.ndarray, ...]:
    """Stratified train/val/test indices, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    parts = [[], [], []]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        a = int(round(fractions[0] * len(idx)))
        b = a + int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            part.extend(chunk.tolist())
    if not all(parts):
        raise DataError("too few images to split into train, validation and test sets")
    return tuple(np.array(sorted(p)) for p in parts)


@dataclass(frozen=True)
class TrainingResult:
    arch: str
    test_accuracy: float  # %
    val_accuracy: float  # %, best epoch
    epochs: int
    seconds: float
    seconds_per_epoch: float
    checkpoint: str | None
    dataset: str
    run_dir: str | None = None  # the folder of its checkpoints (and W&B run)

    def to_dict(self) -> dict:
        return asdict(self)


def check_accelerator(accelerator: str, devices: int | str = 1) -> None:
    """Fail early, in one line, where Lightning would fail late with a traceback:
    ``accelerator`` ``gpu``/``cuda`` without a CUDA GPU visible to torch, ``mps``
    without Apple's Metal backend, or more GPUs asked for than torch sees."""
    if not isinstance(accelerator, str):
        raise AcceleratorError(f"accelerator must be a name such as 'cpu', 'gpu' or 'auto', got {accelerator!r}")
    kind = accelerator.lower()
    if kind in ("gpu", "cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise AcceleratorError(f"accelerator={accelerator!r}: no CUDA GPU is visible to torch on this machine; "
                                   "use accelerator='cpu'")
        if isinstance(devices, int) and not isinstance(devices, bool) and devices > count:
            raise AcceleratorError(f"accelerator={accelerator!r} asks for {devices} devices, but torch sees "
                                   f"{count} CUDA GPU{'s' if count > 1 else ''} on this machine")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise AcceleratorError(f"accelerator={accelerator!r}: Apple's Metal (MPS) backend is not available on this "
                               "machine; use accelerator='cpu'")


def run_folder(run_dir: str | os.PathLike, space, arch: str, taken=()) -> Path:
    """``run_dir/<space>-<hash>``: one folder per architecture (the hash of its canonical
    string), so that checkpoints of different architectures never share a folder; where
    that folder exists (an earlier run) or is ``taken`` (the same arch twice in one call),
    ``-2``, ``-3``, ... beside it, so that no run's checkpoints mix with another's."""
    digest = hashlib.sha256(space.coerce(arch).encode()).hexdigest()[:10]
    base = Path(run_dir) / f"{space.name}-{digest}"
    folder, k = base, 1
    while folder.exists() or folder in taken:
        k += 1
        folder = base.with_name(f"{base.name}-{k}")
    return folder


def train_candidate(
    space,
    arch: str,
    data: str | os.PathLike | ImageDataset = "digits",
    *,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 0.05,
    patience: int = 4,
    seed: int = 0,
    network: dict | None = None,
    use_wandb: bool = False,
    run_dir: str | os.PathLike = "runs",
    accelerator: str = "cpu",
    devices: int | str = 1,
    strategy: str = "auto",
    progress: bool = True,
) -> TrainingResult:
    """Train ``arch`` with the Lightning Trainer (SGD + cosine schedule, early
    stopping on validation accuracy, best checkpoint kept) and report its test
    accuracy. ``network`` passes options to the space's ``to_module`` (for NB201:
    ``channels``, ``cells_per_stage``; default a reduced C=8, N=1 proxy that
    trains in minutes on a CPU)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("patience", patience, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise RequestError(f"{name} must be an int >= {low}, got {value!r}")
    check_accelerator(accelerator, devices)
    arch = space.coerce(arch)
    dataset = data if isinstance(data, ImageDataset) else load_images(data)
    num_classes = len(dataset.classes)
    x = _prepare(dataset, space.input_shape_of(arch))
    y = torch.from_numpy(dataset.labels)
    train, val, test = split_indices(dataset.labels, seed)
    L.seed_everything(seed, workers=True, verbose=False)
    options = {"channels": 8, "cells_per_stage": 1, **(network or {})} if space.name == "nb201" else (network or {})
    module = ClassifierModule(space.to_module(arch, num_classes=num_classes, **options), lr, epochs)
    g = torch.Generator().manual_seed(seed)
    loaders = [DataLoader(TensorDataset(x[i], y[i]), batch_size=batch_size, shuffle=(k == 0), generator=g)
               for k, i in enumerate((train, val, test))]
    run_dir = Path(run_dir)
    checkpoint = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), filename="best-{epoch}", monitor="val/acc",
                                 mode="max", save_top_k=1)
    logger = False
    if use_wandb:
        from .tracking import wandb_logger

        logger = wandb_logger(name=f"train-{space.name}", save_dir=run_dir, job_type="train",
                              config={"arch": arch, "dataset": dataset.source, "epochs": epochs,
                                      "batch_size": batch_size, "lr": lr, "seed": seed, "network": options})
    trainer = L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=devices, strategy=strategy, logger=logger,
        callbacks=[EarlyStopping("val/acc", mode="max", patience=patience), checkpoint],
        enable_progress_bar=progress, enable_model_summary=False, deterministic=True, num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, len(loaders[0]))),
    )
    start = time.perf_counter()
    trainer.fit(module, loaders[0], loaders[1])
    seconds = time.perf_counter() - start
    best = checkpoint.best_model_path or None
    tested = trainer.test(module, loaders[2], ckpt_path=best, verbose=False)[0]
    if logger:
        logger.experiment.summary["test_accuracy"] = tested["test/acc"]
        logger.experiment.finish()
    epochs_run = trainer.current_epoch
    return TrainingResult(arch, round(100 * tested["test/acc"], 3), round(100 * float(checkpoint.best_model_score or 0), 3),
                          epochs_run, round(seconds, 2), round(seconds / max(1, epochs_run), 2), best, dataset.source,
                          str(run_dir))


def _train_job(job: tuple) -> TrainingResult:
    """One candidate's training on a fixed number of CPU threads (also the body of
    a Ray task): float reductions depend on the thread count, so fixing it is what
    makes the serial and the Ray path give identical results."""
    from .spaces import get_space

    space_name, arch, data, run_dir, threads, options = job
    with torch_threads(threads):
        return train_candidate(get_space(space_name), arch, data, run_dir=run_dir, **options)


def train_candidates(
    space,
    archs,
    data: str | os.PathLike | ImageDataset = "digits",
    *,
    run_dir: str | os.PathLike = "runs",
    ray: bool = False,
    ray_address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    **options,
) -> list[TrainingResult]:
    """Train several candidates (see :func:`train_candidate` for ``options``), one
    after another or as Ray tasks (``ray=True``; see :mod:`archgen.distributed`),
    each on ``threads`` CPU threads. Each architecture gets its own run folder
    (:func:`run_folder`: ``run_dir/<space>-<hash>``; an architecture given twice, a
    ``-2`` beside it); the data is loaded once. Same seeds, same results on either path."""
    if check_threads(threads) is None:
        raise RequestError("threads must be an int >= 1, got None")
    check_accelerator(options.get("accelerator", "cpu"), options.get("devices", 1))
    dataset = data if isinstance(data, ImageDataset) else load_images(data)
    archs = [space.coerce(a) for a in archs]
    folders: list[Path] = []
    for a in archs:
        folders.append(run_folder(run_dir, space, a, taken=folders))
    jobs = [(space.name, a, dataset, str(folder), threads, {"progress": False, **options})
            for a, folder in zip(archs, folders)]
    if ray:
        from .distributed import run_on_ray

        return run_on_ray(_train_job, jobs, address=ray_address, workers=workers, description="training",
                          cpus_per_task=threads)
    return [_train_job(job) for job in jobs]


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == y).float().mean()


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification with SGD (momentum, Nesterov) and a cosine schedule."""

    def __init__(self, net: torch.nn.Module, lr: float, epochs: int):
        super().__init__()
        self.net, self.lr, self.epochs = net, lr, epochs

    def forward(self, x):
        return self.net(x)

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.log_dict({f"{stage}/loss": loss, f"{stage}/acc": _accuracy(logits, y)}, prog_bar=stage != "train",
                      batch_size=len(y), on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)}
