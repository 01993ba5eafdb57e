"""A task in the loop: learn a new task from the user's own images, end to end.

:func:`learn_task` (``ArchGen.learn_task``, ``archgen learn-task``) does what calibrating a
task by hand asks of a user, in one call:

1. chooses ``k`` architectures worth training (``ArchGen.choose_task_archs``: informative
   under the task prior, and so diverse);
2. trains each briefly on the data (a *proxy run*: ``epochs`` epochs of
   :func:`archgen.training.train_candidates`, on ``threads`` CPU threads each), one after
   another with a progress bar or as Ray tasks (``ray=True``);
3. calibrates the task from their test accuracies (``ArchGen.calibrate_task``), stored like
   every calibration, so that ``generate(task=name, ...)`` works here and in later sessions.

Proxy runs are cached in SQLite (:class:`TrainingCache`, ``<cache folder>/trainings.sqlite``
beside the measurement cache) and keyed by the space, the architecture's canonical string,
a fingerprint of the data (:func:`dataset_fingerprint`) and the training settings
(:class:`ProxySettings`, seed included): the same call again trains nothing and gives the
same accuracies. The key is the canonical *string*, not the isomorphism-aware graph hash
latencies are keyed by: two isomorphic strings build the same network with its parameters
created in another order, so from one seed they train to different numbers, and a result
must not depend on which of them happened to be trained first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cache import cache_folder, scratch_folder
from .calibrations import CalibrationStoreError
from .errors import CacheError, DataError, RequestError
from .sqlite_cache import SQLiteCache
from .threads import check_threads
from .training import ImageDataset, TrainingResult, load_images, split_indices
from .validation import MAX_SAMPLE, check_count, check_finite, check_seed, quote

if TYPE_CHECKING:
    from predictors.predictor import Calibration

#: the training cache's file name, in :func:`~archgen.cache.cache_folder`
TRAININGS_FILE = "trainings.sqlite"
#: the proxy-training recipe (network options, optimiser, schedule, early stopping) a cached
#: result was made with: raised whenever :mod:`archgen.training` changes what a run computes,
#: so that no result of the old recipe is reused
RECIPE = 1
#: early stopping patience of a proxy run (epochs without a better validation accuracy)
PATIENCE = 4


def training_cache_path() -> Path:
    """``<cache folder>/trainings.sqlite`` (the measurement cache's folder: ``$ARCHGEN_CACHE`` moves both)."""
    return cache_folder() / TRAININGS_FILE


class TrainingCacheError(CacheError):
    """A file that is not (or no longer) an archgen training cache, or a result that must
    not be stored in one."""


@dataclass(frozen=True)
class ProxySettings:
    """How a proxy run trains: ``epochs`` (at most; early stopping after :data:`PATIENCE`
    epochs without progress), ``batch_size``, SGD learning rate ``lr`` (cosine schedule),
    ``seed`` (split, initialisation, data order) and torch CPU ``threads`` (float
    reductions depend on the count, so it is part of what makes a result repeatable)."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    seed: int = 0
    threads: int = 1

    def checked(self) -> ProxySettings:
        check_count("epochs", self.epochs, maximum=10_000)
        check_count("batch_size", self.batch_size, maximum=1_000_000)
        check_finite("lr", self.lr, positive=True)
        check_seed(self.seed)
        if check_threads(self.threads) is None:
            raise RequestError("threads must be an int >= 1, got None")
        return self

    def key(self) -> str:
        """What a cached result must have been trained with (the recipe version included)."""
        return json.dumps({**asdict(self), "lr": float(self.lr), "patience": PATIENCE, "recipe": RECIPE},
                          sort_keys=True)


def dataset_fingerprint(data: ImageDataset) -> str:
    """A SHA-256 digest (32 hex digits) of the images as training reads them (float32
    ``[N, C, H, W]`` in [0, 1], their shape), the labels and the number of classes.

    Cheap next to a single training (about 1 s per GB of images) and independent of
    where the data came from: the same images, from ``digits``, an ``.npz`` or a folder
    at any path, share results, while one changed pixel or label does not. The arrays
    are hashed rather than the file's bytes: they are what training sees, whatever the
    file's compression or key order."""
    digest = hashlib.sha256()
    images = np.ascontiguousarray(data.images, dtype=np.float32)
    labels = np.ascontiguousarray(data.labels, dtype=np.int64)
    digest.update(json.dumps({"images": list(images.shape), "classes": len(data.classes)}).encode())
    digest.update(memoryview(images).cast("B"))
    digest.update(memoryview(labels).cast("B"))
    return digest.hexdigest()[:32]


_TRAININGS_TABLE = """CREATE TABLE trainings (
    space TEXT NOT NULL, arch TEXT NOT NULL, dataset TEXT NOT NULL, settings TEXT NOT NULL,
    result TEXT NOT NULL, source TEXT NOT NULL, trained_at REAL NOT NULL,
    PRIMARY KEY (space, arch, dataset, settings)
)"""


def _problems(result: TrainingResult) -> list[str]:
    """Why ``result`` is not a usable proxy run (empty: it is)."""
    problems = []
    for name in ("test_accuracy", "val_accuracy"):
        value = getattr(result, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            problems.append(f"{name}={value!r}")
    if isinstance(result.epochs, bool) or not isinstance(result.epochs, int) or result.epochs < 1:
        problems.append(f"epochs={result.epochs!r}")
    for name in ("seconds", "seconds_per_epoch"):
        value = getattr(result, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems.append(f"{name}={value!r}")
    return problems


class TrainingCache(SQLiteCache):
    """Proxy-run results (one SQLite file), keyed by space, canonical architecture string,
    :func:`dataset_fingerprint` and :meth:`ProxySettings.key`.

    Opened and written as the measurement cache is (:mod:`archgen.sqlite_cache`): a
    damaged, foreign or other-schema file is refused untouched, each result is committed
    on its own as it arrives, and several processes may share the file."""

    APPLICATION = "archgen-trainings"
    SCHEMA_VERSION = 1
    SCHEMA = (_TRAININGS_TABLE,)
    TABLE = "trainings"
    KIND = "training cache"
    ERROR = TrainingCacheError

    @classmethod
    def default_path(cls) -> Path:
        return training_cache_path()

    def get(self, space: str, arch: str, dataset: str, settings: ProxySettings) -> TrainingResult | None:
        """The stored result, or None. A stored row that is not a usable result (an older
        archgen, a hand edit) counts as absent, with a warning: it is trained again and replaced."""
        row = self._db.execute("SELECT result FROM trainings WHERE space=? AND arch=? AND dataset=? AND settings=?",
                               (space, arch, dataset, settings.key())).fetchone()
        if row is None:
            return None
        try:
            found = TrainingResult(**json.loads(row[0]))
            problems = _problems(found)
        except (ValueError, TypeError) as exc:  # not JSON, not an object, other fields
            problems = [f"unreadable: {exc}"]
        if problems:
            warnings.warn(f"{self.path}: ignoring the stored training of {quote(arch)} ({', '.join(problems)}); "
                          "it is trained again", RuntimeWarning, stacklevel=2)
            return None
        return found

    def put(self, space: str, arch: str, dataset: str, settings: ProxySettings, result: TrainingResult,
            source: str = "") -> None:
        """Store one result in its own transaction (durable once this returns); one that
        is not usable (accuracies outside [0, 100], ...) is refused."""
        problems = _problems(result)
        if problems:
            raise TrainingCacheError(f"refusing to store a training of {quote(arch)} in {self.path}: "
                                     f"{', '.join(problems)}")
        record = json.dumps(result.to_dict(), allow_nan=False)
        self._db.execute("INSERT OR REPLACE INTO trainings VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (space, arch, dataset, settings.key(), record, source, time.time()))

    def __enter__(self) -> TrainingCache:
        return self


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-run banners ("GPU available", tips, a torch deprecation) would
    print between the lines of the progress bar k times over; its warnings still show."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _proxy_job(job: tuple) -> TrainingResult:
    """One proxy run (here, or as a Ray task): :func:`~archgen.training.train_candidates`
    with one architecture, its checkpoints in a scratch folder removed afterwards (a
    proxy run is for its accuracy only)."""
    from .spaces import get_space
    from .training import train_candidates

    space_name, arch, dataset, settings = job
    with tempfile.TemporaryDirectory(dir=scratch_folder(), prefix="train-") as tmp, _quiet_lightning():
        result = train_candidates(get_space(space_name), [arch], dataset, run_dir=tmp, threads=settings.threads,
                                  epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                  seed=settings.seed, patience=PATIENCE, progress=False)[0]
    return dataclasses.replace(result, checkpoint=None, run_dir=None)


@dataclass(frozen=True)
class TaskLearning:
    """What :func:`learn_task` did: the ``archs`` it chose and their proxy test
    ``accuracies`` (%), in order; ``trained`` of them were trained by this call, the rest
    (:attr:`cached`) came from the cache; ``seconds`` of wall time in all; the
    ``calibration`` of the task (``fit_spearman``: rank agreement on the k points)."""

    name: str
    space: str
    archs: list[str]
    accuracies: list[float]
    seconds: float
    trained: int
    calibration: Calibration
    data: str  # where the images came from
    dataset: str  # dataset_fingerprint
    settings: ProxySettings
    results: list[TrainingResult] = field(repr=False, default_factory=list)

    @property
    def cached(self) -> int:
        """How many results came from the training cache."""
        return len(self.archs) - self.trained

    def to_dict(self) -> dict:
        cal = asdict(self.calibration) if dataclasses.is_dataclass(self.calibration) else {}
        cal = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in cal.items()}
        return {"name": self.name, "space": self.space, "data": self.data, "dataset": self.dataset,
                "settings": asdict(self.settings), "seconds": self.seconds, "trained": self.trained,
                "cached": self.cached, "calibration": cal,
                "archs": [{"arch": r.arch, "test_accuracy": r.test_accuracy, "val_accuracy": r.val_accuracy,
                           "epochs": r.epochs, "seconds": r.seconds} for r in self.results]}


def _dataset(data) -> ImageDataset:
    """The images, checked to be usable for learning a task before anything is trained."""
    if isinstance(data, ImageDataset):
        dataset = data
    elif isinstance(data, (str, os.PathLike)):
        dataset = load_images(data)
    else:
        raise DataError(f"data must be 'digits', an .npz file or a folder of class sub-folders, got {quote(data)}")
    present = np.unique(dataset.labels)
    if len(present) < 2:
        raise DataError(f"{dataset.source}: learning a task needs images of at least 2 classes, found "
                        f"{len(present)} ({', '.join(dataset.classes[int(c)] for c in present)})")
    return dataset


def learn_task(
    ag,
    name: str,
    data: str | os.PathLike | ImageDataset = "digits",
    *,
    k: int = 20,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int = 2,
    progress: bool = True,
    cache: TrainingCache | str | os.PathLike | None | bool = None,
    threads: int = 1,
) -> TaskLearning:
    """Learn task ``name`` in ``ag`` (an :class:`~archgen.api.ArchGen`) from ``data``; see
    the module docstring and :meth:`ArchGen.learn_task <archgen.api.ArchGen.learn_task>`."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    space = ag.space
    # everything a user can get wrong fails here, before a single training
    if not isinstance(name, str) or not name:
        raise RequestError(f"name must be a non-empty string, got {quote(name)}")
    if name in ag.bundle.accuracy.known_targets:
        raise RequestError(f"{name!r} is a pretrained task of this bundle; learn yours under another name")
    try:
        ag.calibration_store.path(space.name, "task", name)  # a name that cannot be stored
    except CalibrationStoreError as exc:  # (learn_task always stores: no persist=False to suggest)
        raise CalibrationStoreError(str(exc).replace(", or pass persist=False to keep it in memory only", "")) from None
    check_count("k", k, minimum=2, maximum=MAX_SAMPLE)
    settings = ProxySettings(epochs, batch_size, lr, seed, threads).checked()
    if ray:
        check_count("workers", workers, maximum=1_000_000)
    dataset = _dataset(data)
    split_indices(dataset.labels, seed)  # too few images to split fails now, not in every run
    fingerprint = dataset_fingerprint(dataset)
    archs = [space.coerce(a) for a in ag.choose_task_archs(k, seed=seed)]

    store = None if cache is False else cache if isinstance(cache, TrainingCache) else TrainingCache(cache)
    found: dict[int, TrainingResult] = {}
    try:
        todo = []
        for i, arch in enumerate(archs):
            hit = store.get(space.name, arch, fingerprint, settings) if store is not None else None
            if hit is not None:
                found[i] = dataclasses.replace(hit, arch=arch, dataset=dataset.source)
            else:
                todo.append(i)

        def keep(i: int, result: TrainingResult) -> None:
            if store is not None:  # committed at once: an interruption loses nothing finished
                store.put(space.name, archs[i], fingerprint, settings, result, dataset.source)
            found[i] = result

        jobs = [(space.name, archs[i], dataset, settings) for i in todo]
        if ray and todo:
            from .distributed import run_on_ray

            run_on_ray(_proxy_job, jobs, address=ray_address, workers=workers, progress=progress,
                       description=f"training {len(todo)} of {k} for {name}", cpus_per_task=settings.threads,
                       on_result=lambda j, result: keep(todo[j], result))
        else:
            with tqdm(total=len(archs), initial=len(archs) - len(todo), desc=f"training for task {name}",
                      unit="arch", disable=not progress) as bar:
                for i, job in zip(todo, jobs):
                    keep(i, _proxy_job(job))
                    bar.update(1)
    finally:
        if store is not None and not isinstance(cache, TrainingCache):
            store.close()

    results = [found[i] for i in range(len(archs))]
    accuracies = [r.test_accuracy for r in results]
    try:
        calibration = ag.calibrate_task(name, archs, accuracies, replace=True)
    except RequestError as exc:
        if "all equal" not in str(exc):
            raise
        raise RequestError(f"cannot learn task {name!r}: the {k} proxy runs' test accuracies are all equal "
                           f"({accuracies[0]:g}%), so they rank nothing; train longer (epochs, now {epochs}), on "
                           "more images, or with another lr (the runs so far are cached)") from None
    return TaskLearning(name, space.name, archs, accuracies, round(time.perf_counter() - start, 2), len(todo),
                        calibration, dataset.source, fingerprint, settings, results)
