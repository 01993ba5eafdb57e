"""The Python API: one object that wires spaces, predictors (and generators) together.

    >>> from archgen import ArchGen
    >>> ag = ArchGen.pretrained("nb201")
    >>> ag.predict_latency(["|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"], device="pixel3").mean
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .calibrations import KINDS, LOADED, UNITS, CalibrationInfo, CalibrationStore, CalibrationStoreWarning
from .errors import BundleError, RequestError, UnknownNameError
from .generation import Candidates, GuidanceSettings
from .graph import ArchGraph
from .spaces import get_space
from .threads import check_threads, torch_threads

if TYPE_CHECKING:
    from .task_learning import TaskLearning

ArchLike = str | ArchGraph

#: spaces with at most this many architectures are searched whole by :meth:`ArchGen.choose_task_archs`
ACTIVE_POOL_ENUMERATE = 20_000
#: random candidates :meth:`ArchGen.choose_task_archs` picks from in larger spaces
ACTIVE_POOL = 2_000


def _lazy_machine_id():
    """This machine's :func:`~archgen.measurements.machine_id`, computed on the first call
    (it imports onnxruntime: only a stored calibration measured here needs it)."""
    cached: list[str] = []

    def machine() -> str:
        if not cached:
            from .measurements import machine_id

            cached.append(machine_id())
        return cached[0]

    return machine


def bundled_path(space: str) -> Path:
    """Where the embedded default bundle of ``space`` lives inside the package."""
    return Path(str(resources.files("archgen") / "bundles" / f"{space}.pt"))


class ArchGen:
    """Predict, calibrate and generate in one search space.

    Build it with :meth:`pretrained`; devices and tasks added by calibration
    behave exactly like the pretrained ones. They are stored
    (:mod:`archgen.calibrations`) and restored by the next object made with the same
    bundle (``restore=False``: none are); :meth:`calibrations` lists them and
    :meth:`forget` removes one. A restored one is listed by :meth:`devices` and
    :meth:`tasks` at once and calibrated again from its stored inputs when this
    object first uses it (milliseconds), so that making an object costs nothing per
    stored calibration: reach it through this object's methods, not ``bundle`` directly
    (or call :meth:`restore_now` first). ``bundle_source``: where ``bundle`` came from,
    for people reading a stored calibration (:meth:`pretrained` sets it).
    ``data`` is the benchmark folder used to fill in true metrics of generated
    candidates (default ``$ARCHGEN_DATA``, else the tables packaged with archgen).

    ``threads``: torch intra-op threads while predicting and generating (None:
    torch's setting as it is). One by default, deliberately: the predictors and
    generators are small networks that gain little from more threads, while torch's
    default pool (a thread per core) fights every other busy process for the cores:
    beside two CPU-bound processes on a 2-core machine an FBNet request took 72-105 s
    on two threads, 21-28 s on one (see :mod:`archgen.threads`). The count is restored
    after each call.
    """

    def __init__(self, bundle, data: str | os.PathLike | None = None, threads: int | None = 1, *,
                 restore: bool = True, bundle_source: str = "a bundle made in memory"):
        self.bundle = bundle
        self.space = get_space(bundle.space)
        if data is not None:  # a folder named on purpose must exist; only the default may be absent
            from .data import data_root

            data_root(data)
        self.data = data
        self.threads = check_threads(threads)
        #: where calibrations are stored (``$ARCHGEN_CALIBRATIONS`` when this object was made)
        self.calibration_store = CalibrationStore()
        self._bundle_source = bundle_source
        self._stored: dict[tuple[str, str], CalibrationInfo] = {}  # (kind, name) -> its stored file's state
        self._pending: dict[tuple[str, str], object] = {}  # accepted from the store, calibrated on first use
        self._restored: set[tuple[str, str]] = set()  # restored from the store and not calibrated since
        if restore:
            self._restore()

    @classmethod
    def pretrained(cls, space: str = "nb201", path: str | os.PathLike | None = None,
                   data: str | os.PathLike | None = None, threads: int | None = 1, *,
                   restore: bool = True) -> ArchGen:
        """The embedded default bundle of ``space`` (no data folder needed), or the
        bundle at ``path`` made by ``archgen pretrain``. ``threads``: see :class:`ArchGen`.
        ``restore``: have the devices and tasks stored by earlier calls with this
        bundle (see :meth:`calibrations`; each calibrated again on first use)."""
        from .bundle import Bundle

        name = get_space(space).name
        file = Path(path) if path is not None else bundled_path(name)
        if path is None and not file.is_file():
            raise FileNotFoundError(
                f"no embedded bundle for space {name!r} at {file}; create one with "
                f"`archgen pretrain --space {name} --out {file}`"
            )
        threads = check_threads(threads)
        bundle = Bundle.load(file)
        if bundle.space != name:
            raise BundleError(f"bundle {file} is for space {bundle.space!r}, not {name!r}")
        source = f"embedded {name}" if path is None else str(file.resolve())
        return cls(bundle, data, threads, restore=restore, bundle_source=source)

    # -- names -------------------------------------------------------------------
    def devices(self) -> list[str]:
        """Pretrained and calibrated device names (restored ones included)."""
        return [*self.bundle.latency.targets, *(n for k, n in self._pending if k == "device")]

    def tasks(self) -> list[str]:
        """Pretrained and calibrated task names (restored ones included)."""
        return [*self.bundle.accuracy.targets, *(n for k, n in self._pending if k == "task")]

    def device_note(self, device: str) -> str:
        """What ``device``'s milliseconds mean, where its table says (``anb``'s
        ``*_per_image`` devices: 1000 / measured throughput, not batch-1 latency); "" otherwise."""
        return self.bundle.meta.get("device_notes", {}).get(device, "")

    def generators(self) -> list[str]:
        """Names of the bundle's generators, and ``"random"`` (uniform sampling, a baseline)."""
        from .generation import RANDOM

        return [*self.bundle.generators, RANDOM]

    # -- calibration -------------------------------------------------------------------
    def calibrate_device(self, name: str, archs: Sequence[ArchLike], latencies_ms: Sequence[float], *,
                         replace: bool = False, persist: bool = True):
        """Add device ``name`` from measured latencies (ms) of k >= 2 architectures
        (about 10 is enough). Returns a :class:`~predictors.predictor.Calibration`.

        ``persist``: store it (:mod:`archgen.calibrations`), so that later objects made
        with this bundle, and ``archgen`` commands, have it too; the name must then be
        letters, digits and ``_.-+@=``. ``replace``: recalibrate a device calibrated
        earlier in this object (one restored from the store is replaced without it)."""
        if self._profiled(name):
            return self._add_to_profile(name, archs, latencies_ms, persist=persist)
        return self._calibrate("device", name, archs, latencies_ms, replace=replace, persist=persist)

    def _profiled(self, name) -> bool:
        """Whether device ``name`` (restored from the store if need be) predicts from a kernel profile."""
        self._use("device", name)
        return isinstance(name, str) and name in self.bundle.latency.targets and \
            self.bundle.latency.head_of(name) == "profile"

    def _add_to_profile(self, name: str, archs, latencies_ms, *, persist: bool):
        """Whole-network measurements of a profiled device refine its correction (the profile stays)."""
        with torch_threads(self.threads):
            cal = self.bundle.latency.add_measurements(name, archs, latencies_ms)
        self._restored.discard(("device", name))
        if persist:
            profile = self.bundle.latency.profile_of(name)
            self._persist("device", name, machine=profile.machine, settings=profile.settings)
        return cal

    def profile_local(self, name: str = "local", *, threads: int = 1, cache=None, progress: bool = True,
                      persist: bool = True):
        """Profile this machine: time every distinct kernel of the space with onnxruntime
        (:func:`~archgen.profiles.measure_profile`: interleaved rounds, the measurement
        cache, a progress bar; seconds to two minutes, then seconds again from the cache)
        and add device ``name`` predicted from the profile (:mod:`predictors.profiled`).
        Then ``predict_latency(archs, device="local")`` and ``generate(device="local", ...)``
        use it; whole-network measurements given later (:meth:`calibrate_device`,
        :meth:`calibrate_local`, ``generate(measurements=...)``) correct it. Stored with
        this machine's id (``persist``), like :meth:`calibrate_local`. Returns the
        :class:`~archgen.profiles.KernelProfile`."""
        from .profiles import measure_profile

        if persist:
            self.calibration_store.path(self.space.name, "device", name)  # a bad name fails before measuring
        check_threads(threads)
        profile = measure_profile(self.space, threads=threads, cache=cache, progress=progress)
        self._calibrate_profile(name, profile, persist=persist)
        return profile

    def calibrate_kernels(self, timings: str | os.PathLike, device: str, *, persist: bool = True):
        """Add ``device`` from a kernel timings file made on it (``kernel,ms`` lines for the
        kernels ``archgen kernels export`` wrote; :func:`~archgen.profiles.read_timings`):
        for devices that run an inference runtime but no Python. A partial file works for
        the networks whose kernels it has. Returns the :class:`~archgen.profiles.KernelProfile`."""
        from .profiles import read_timings

        if persist:
            self.calibration_store.path(self.space.name, "device", device)
        profile = read_timings(timings, self.space)
        self._calibrate_profile(device, profile, persist=persist)
        return profile

    def _calibrate_profile(self, name: str, profile, *, persist: bool) -> None:
        if name in self.bundle.latency.known_targets:
            raise RequestError(f"{name!r} is a pretrained device of this bundle; profile it under another name")
        key = ("device", name)
        with torch_threads(self.threads):
            self.bundle.latency.calibrate(name, [], [], replace=True, head="profile", profile=profile)
        self._pending.pop(key, None)
        self._restored.discard(key)
        if persist:
            self._persist("device", name, machine=profile.machine, settings=profile.settings)

    def device_profile(self, name: str):
        """The :class:`~archgen.profiles.KernelProfile` device ``name`` is predicted from
        (:meth:`profile_local`, :meth:`calibrate_kernels`), or None for a device without one."""
        self._use("device", name)
        if name not in self.bundle.latency.targets:
            self.bundle.latency.head_of(name)  # the unknown-device error, with the valid names
        return self.bundle.latency.profile_of(name)

    def calibrate_task(self, name: str, archs: Sequence[ArchLike], accuracies: Sequence[float], *,
                       replace: bool = False, units: str = "percent", persist: bool = True, head: str = "gp"):
        """Add task ``name`` from the accuracies of k >= 2 trained architectures (about 20).

        ``head``: ``"gp"`` (default) infers the task as a Gaussian process whose kernels are
        learned from the pretrained tasks (:mod:`predictors.task_gp`), so a task need not be a
        rescaled known one; ``"linear"``, a linear head under the prior learned from them
        (what devices use). Leaving each TransNAS-Bench-101 task out, k=20: Kendall 0.70 (gp)
        vs 0.67 (linear) vs 0.58 for the best other task (``bench/transnas.py``).

        ``units``: ``"percent"`` (values in [0, 100]) or ``"fraction"`` (values in [0, 1],
        multiplied by 100). Values outside that range, not finite or all equal, and values
        all within [0, 1] read as percent, are a :class:`~archgen.errors.RequestError`
        naming the value and its position: predictions are clipped to [0, 100], so a wrong
        scale would otherwise calibrate silently and lose the ranking.
        ``persist`` and ``replace``: see :meth:`calibrate_device` (stored in percent)."""
        from predictors.calibration import check_accuracies

        percent = check_accuracies(accuracies, units)
        return self._calibrate("task", name, archs, percent, replace=replace, persist=persist, head=head)

    def choose_task_archs(self, k: int = 20, *, pool: int | None = None, seed: int = 0) -> list[str]:
        """Which ``k`` architectures to train for a new task, so that :meth:`calibrate_task`
        learns it best: each informative under the task prior (the accuracy predictor's
        pretrained tasks) given those already chosen, which also makes them diverse
        (:meth:`~predictors.predictor.MetricPredictor.choose_informative`).

        The candidates are the whole space where it has at most
        :data:`ACTIVE_POOL_ENUMERATE` architectures (then ``seed`` does not matter: the
        choice is deterministic), else ``pool`` (default :data:`ACTIVE_POOL`) random ones
        drawn with ``seed``."""
        from .validation import MAX_SAMPLE, check_count, check_seed

        check_count("k", k, maximum=MAX_SAMPLE)
        check_seed(seed)
        size = self.space.size
        if pool is None and size is not None and size <= ACTIVE_POOL_ENUMERATE:
            candidates = list(self.space.enumerate())
        else:
            candidates = self.space.sample(check_count("pool", pool or ACTIVE_POOL, maximum=MAX_SAMPLE), seed=seed)
        if k > len(candidates):
            raise RequestError(f"k ({k}) must be at most the {len(candidates)} candidate architectures")
        with torch_threads(self.threads):
            return self.bundle.accuracy.choose_informative(candidates, k)

    def calibrate_local(self, k: int = 10, *, name: str = "local", seed: int = 0, settings=None,
                        cache=None, progress: bool = True, replace: bool = True, persist: bool = True):
        """Measure ``k`` random architectures on this machine with onnxruntime (see
        :func:`~archgen.measurements.measure_archs`; cached) and calibrate device
        ``name`` from them; then ``generate(device="local", ...)`` works. Stored with
        ``persist`` (see :meth:`calibrate_device`) together with this machine's id: a later
        object restores it on this machine only (``archgen generate --device local`` then
        measures nothing)."""
        from dataclasses import asdict

        from .measurements import RuntimeSettings, machine_id, measure_archs

        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise RequestError(f"k must be an int >= 2, got {k!r}")
        if persist and isinstance(name, str) and name:
            self.calibration_store.path(self.space.name, "device", name)  # a bad name fails before measuring
        settings = settings or RuntimeSettings()
        archs = self.space.sample(k, seed=seed)
        measured = measure_archs(self.space, archs, settings, cache=cache, progress=progress)
        if self._profiled(name):
            # the correction learns what the kernels' sum misses, including the statistic (a latency
            # is the lowest round's p10 everywhere: budgets, --verify, the measurement cache)
            return self._add_to_profile(name, archs, [m.latency_ms for m in measured], persist=persist)
        cal = self._calibrate("device", name, archs, [m.latency_ms for m in measured], replace=replace,
                              persist=False)
        if persist:
            self._persist("device", name, machine=machine_id(), settings=asdict(settings))
        return cal

    def learn_task(self, name: str, data: str | os.PathLike = "digits", *, k: int = 20, epochs: int = 3,
                   batch_size: int = 64, lr: float = 0.05, seed: int = 0, ray: bool = False,
                   ray_address: str | None = None, workers: int = 2, progress: bool = True,
                   cache=None) -> TaskLearning:
        """Learn task ``name`` from your images in one call: choose ``k`` architectures
        (:meth:`choose_task_archs`), train each for ``epochs`` (a short proxy run of
        :func:`~archgen.training.train_candidates` on one CPU thread, ``batch_size``, SGD
        ``lr``, ``seed``) on ``data`` (``"digits"``, an ``.npz`` with ``images`` and
        ``labels``, or a folder of class sub-folders), and :meth:`calibrate_task` from
        their test accuracies (stored: ``generate(task=name, ...)`` works here and later).

        Proxy runs are cached (``cache``: a :class:`~archgen.task_learning.TrainingCache`, a
        path, None for ``<cache folder>/trainings.sqlite``, False for none) by space,
        architecture, a fingerprint of the images and the settings: the same call again
        trains nothing. ``ray=True`` trains them as Ray tasks (on ``ray_address``, or a local
        cluster of ``workers`` CPUs), with the same results. ``progress``: a progress bar
        over the k trainings. Returns a :class:`~archgen.task_learning.TaskLearning`.
        See :mod:`archgen.task_learning`."""
        from .task_learning import learn_task

        return learn_task(self, name, data, k=k, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, ray=ray,
                          ray_address=ray_address, workers=workers, progress=progress, cache=cache)

    def _predictor(self, kind: str):
        return self.bundle.latency if kind == "device" else self.bundle.accuracy

    def _calibrate(self, kind: str, name, archs, values, *, replace: bool, persist: bool, head: str = "linear"):
        if persist and isinstance(name, str) and name:  # (not a name at all: the predictor says so)
            self.calibration_store.path(self.space.name, kind, name)  # one that cannot be stored fails first
        key = (kind, name)
        replace = replace or key in self._restored or key in self._pending  # a stored one: this replaces it
        cal = self._predictor(kind).calibrate(name, archs, values, replace=replace, head=head)
        self._pending.pop(key, None)
        self._restored.discard(key)
        if persist:
            self._persist(kind, name)
        elif key in self._stored and self._stored[key].loaded:  # the stored one is no longer what is in use
            info = self._stored[key]
            self._stored[key] = CalibrationInfo(info.name, info.kind, info.space, info.k, info.created, info.bundle,
                                                "refused: replaced in this object by a calibration not stored",
                                                info.path)
        return cal

    def _persist(self, kind: str, name: str, *, machine: str | None = None, settings: dict | None = None) -> None:
        """Store calibrated ``name`` from its measurements; a store that cannot be written
        (a read-only home) warns and leaves the calibration in this object only."""
        from .calibrations import StoredCalibration, _version, now

        archs, values = self._predictor(kind).measurements(name)
        profile = self.bundle.latency.profile_of(name) if kind == "device" else None
        entry = StoredCalibration(self.space.name, kind, name, tuple(archs), tuple(float(v) for v in values),
                                  UNITS[kind], self.bundle.fingerprint(), self._bundle_source, now(), _version(),
                                  machine, settings, self._predictor(kind).head_of(name),
                                  None if profile is None else profile.to_json())
        try:
            path = self.calibration_store.save(entry)
        except OSError as exc:
            warnings.warn(f"could not store the calibration of {kind} {name!r} in {self.calibration_store.root} "
                          f"({type(exc).__name__}: {exc}); it works in this object only", CalibrationStoreWarning,
                          stacklevel=3)
            return
        self._stored[(kind, name)] = CalibrationInfo.of(path, entry, LOADED)

    def _restore(self) -> None:
        """Accept what the store holds for this space and bundle (calibrated on first use,
        :meth:`_use`); record the rest as refused, with the reason (a damaged file also warns)."""
        from .calibrations import CalibrationStoreError, refusal

        found = self.calibration_store.scan(self.space.name)
        if not found:
            return
        machine = _lazy_machine_id()
        for path, entry in found:
            kind, name = path.parent.name, path.stem
            if isinstance(entry, CalibrationStoreError):
                warnings.warn(f"{entry}; skipped", CalibrationStoreWarning, stacklevel=3)
                self._stored[(kind, name)] = CalibrationInfo.of(path, None, f"refused: {entry}",
                                                                space=self.space.name)
                continue
            why = refusal(entry, self.space.name, self.bundle.fingerprint(), machine)
            if not why and name in self._predictor(kind).known_targets:
                why = f"{name!r} is a pretrained {kind} of this bundle; forget it"
            if not why:
                self._pending[(kind, name)] = entry
            self._stored[(kind, name)] = CalibrationInfo.of(path, entry, f"refused: {why}" if why else LOADED)

    def _use(self, kind: str, name: object) -> None:
        """Calibrate restored ``name`` of ``kind`` from its stored inputs, if it waits to be.
        Stored inputs that no longer calibrate (a file edited by hand) mark it refused: the
        name is then unknown, and the error says why."""
        from predictors.calibration import CalibrationWarning

        entry = self._pending.pop((kind, name), None) if isinstance(name, str) else None
        if entry is None:
            return
        try:
            with warnings.catch_warnings():  # a fit that cannot be judged warned when it was made
                warnings.simplefilter("ignore", CalibrationWarning)
                profile = None
                if entry.profile is not None:
                    from .profiles import KernelProfile

                    profile = KernelProfile.from_json(entry.profile, str(self._stored[(kind, name)].path))
                self._predictor(kind).calibrate(name, list(entry.archs), list(entry.values), replace=True,
                                                head=entry.head, profile=profile)
            self._restored.add((kind, name))
        except (ValueError, KeyError) as exc:  # RequestError, InvalidArchError, ...
            info = self._stored[(kind, name)]
            self._stored[(kind, name)] = CalibrationInfo(
                info.name, info.kind, info.space, info.k, info.created, info.bundle,
                f"refused: cannot be calibrated again from its file ({exc}); recalibrate, or forget it", info.path)

    def restore_now(self) -> None:
        """Calibrate every restored device and task now rather than on first use (for code
        that reads ``bundle``'s predictors directly; milliseconds each)."""
        for kind, name in list(self._pending):
            self._use(kind, name)

    def calibrations(self) -> list[CalibrationInfo]:
        """The stored calibrations of this space (:mod:`archgen.calibrations`), devices
        then tasks, by name: each a :class:`~archgen.calibrations.CalibrationInfo` whose
        ``status`` is ``"loaded"`` (in use: restored, or calibrated by this object) or
        ``"refused: <why>"`` (made with another bundle, for another space or on another
        machine, or a damaged file). Calibrations made with ``persist=False`` are not stored
        and not listed."""
        return [self._stored[key] for key in sorted(self._stored, key=lambda kn: (KINDS.index(kn[0]), kn[1]))]

    def forget(self, name: str, kind: str | None = None) -> CalibrationInfo | None:
        """Remove calibrated device or task ``name``: from this object, and its stored file
        (loaded or refused) from the store. ``kind``: ``"device"`` or ``"task"``, needed only
        where both are calibrated under ``name``. Returns what was stored (None: it was in
        this object only). A pretrained name, or one neither calibrated nor stored, is an error."""
        if kind is not None and kind not in KINDS:
            raise RequestError(f"kind must be 'device' or 'task', got {kind!r}")
        found = []
        for k in KINDS if kind is None else (kind,):
            predictor = self._predictor(k)
            in_memory = name in predictor.targets and name not in predictor.known_targets
            files = self.calibration_store.find(name, k, self.space.name)
            if in_memory or files or (k, name) in self._stored or (k, name) in self._pending:
                found.append((k, in_memory, files))
        if not found:
            pretrained = [k for k in KINDS if name in self._predictor(k).known_targets]
            if pretrained:
                raise RequestError(f"{name!r} is a pretrained {pretrained[0]} and cannot be forgotten")
            names = {n for k in KINDS for n in self._predictor(k).targets if n not in self._predictor(k).known_targets}
            raise UnknownNameError("calibration", name, names | {n for _, n in self._stored},
                                   hint="ArchGen.calibrations() and `archgen calibrations` list the stored ones")
        if len(found) > 1:
            raise RequestError(f"{name!r} is both a calibrated device and a calibrated task; "
                               "pass kind='device' or kind='task'")
        k, in_memory, files = found[0]
        if in_memory:
            self._predictor(k).forget(name)
        for path in files:
            self.calibration_store.remove(path)
        self._pending.pop((k, name), None)
        self._restored.discard((k, name))
        return self._stored.pop((k, name), None)

    def _stored_note(self, kind: str, name: object) -> str:
        """Why ``name``, unknown as a ``kind``, is not loaded although stored ("" where it is not stored)."""
        info = self._stored.get((kind, name)) if isinstance(name, str) else None
        if info is not None and not info.loaded:
            return f"a stored calibration of {kind} {name!r} was not loaded: {info.status.removeprefix('refused: ')}"
        try:
            elsewhere = [p.parent.parent.name for p in self.calibration_store.find(name, kind)
                         if p.parent.parent.name != self.space.name]
        except OSError:
            return ""
        if elsewhere:
            return (f"{kind} {name!r} is stored for space {', '.join(elsewhere)}, not {self.space.name}: each space "
                    "has its own predictors; calibrate it in this one")
        return ""

    @contextmanager
    def _stored_hint(self):
        """Add to an unknown device or task error why a stored calibration of that name is not in use."""
        try:
            yield
        except UnknownNameError as exc:
            note = self._stored_note(exc.kind, exc.name) if exc.kind in KINDS else ""
            if not note:
                raise
            raise UnknownNameError(exc.kind, exc.name, exc.valid,
                                   hint="; ".join(filter(None, (note, exc.hint)))) from None

    def measure(self, archs: Sequence[ArchLike], *, settings=None, cache=None, progress: bool = True):
        """Measured onnxruntime latencies of ``archs`` on this machine (a list of
        :class:`~archgen.measurements.ArchMeasurement`, in order; cached)."""
        from .measurements import RuntimeSettings, measure_archs

        return measure_archs(self.space, archs, settings or RuntimeSettings(), cache=cache, progress=progress)

    def local_measure(self, *, settings=None, cache=None):
        """``measure`` for ``generate(device="local", measurements=...)``: arch
        strings -> latencies (ms) measured here with onnxruntime (:meth:`measure`, cached)."""
        def measure(archs):
            return [m.latency_ms for m in self.measure(archs, settings=settings, cache=cache, progress=False)]

        return measure

    @property
    def scores_choices(self) -> bool:
        """Whether both predictors score option vectors directly (thousands of
        proposals a second; see :mod:`graph_encoders.choices`)."""
        return self.bundle.accuracy.reads_choices and self.bundle.latency.reads_choices

    def task_domain(self, task: str) -> dict[str, str]:
        """The decisions ``task`` was learned with only, as ``{"slot N": option}``
        (empty: anywhere in the space); generation keeps them, prediction outside them is an error."""
        self._use("task", task)
        domain = self.bundle.accuracy.domain(task)
        return {f"slot {s}": self.space.decisions.options[s][o] for s, o in domain.items()}

    # -- prediction ----------------------------------------------------------------------
    def predict_latency(self, archs: Sequence[ArchLike], device: str):
        """Latency (ms) on ``device``: a :class:`~predictors.predictor.Prediction`
        with ``.mean`` and ``.std`` arrays (``np.asarray`` gives the means)."""
        self._use("device", device)
        with self._stored_hint(), torch_threads(self.threads):
            return self.bundle.latency.predict(archs, device)

    def predict_accuracy(self, archs: Sequence[ArchLike], task: str):
        """Accuracy (%) on ``task``, as a :class:`~predictors.predictor.Prediction`."""
        self._use("task", task)
        with self._stored_hint(), torch_threads(self.threads):
            return self.bundle.accuracy.predict(archs, task)

    # -- generation ----------------------------------------------------------------------
    def generate(
        self,
        task: str | None = None,
        device: str | None = None,
        max_latency_ms: float | None = None,
        n: int = 5,
        generator: str = "diffusion",
        seed: int = 0,
        *,
        samples: int | None = None,
        strength: float | None = None,
        proposals: int | None = None,
        margin: float | None = None,
        measure=None,
        measurements: int = 0,
        wandb: bool = False,
        run_dir: str | os.PathLike = "runs",
        progress: bool = True,
    ) -> Candidates:
        """The ``n`` best architectures for ``task`` predicted to run within
        ``max_latency_ms`` on ``device`` (a pretrained or calibrated one), best first.
        ``task`` may be left out where the bundle has a single one (FBNet's and
        MobileNetV3's ``proxy``); with several, the error lists them.

        Limits: ``n`` 1 to 10,000 (:data:`~archgen.validation.MAX_CANDIDATES`) and at
        most ``samples``; ``samples`` 1 to 100,000 (``MAX_SAMPLES``); ``proposals`` 1 to
        1,024 (``MAX_PROPOSALS``); ``seed`` 0 to 2**63-1; ``measurements`` 0 to ``samples``.

        ``generator``: ``"diffusion"`` or ``"autoregressive"`` (or ``"random"``, the
        unguided baseline, to compare with). The options left
        as None take :meth:`GuidanceSettings.for_space <archgen.generation.GuidanceSettings.for_space>` defaults
        (more samples while measuring). Runs on the object's ``threads`` torch threads.
        Raises :class:`~archgen.errors.BudgetError` when no sample meets the
        budget and warns (:class:`~archgen.errors.GenerationWarning`) when fewer
        than ``n`` do. ``wandb=True`` logs the request, settings, candidates,
        summary metrics and an accuracy-vs-latency plot to a W&B run under
        ``run_dir`` (offline unless you are logged in). The result's ``.report``
        holds the summary metrics.

        Hardware in the loop: with ``measurements=m`` and ``measure``, a function
        that measures architectures on the device (arch strings -> ms), up to ``m``
        of the candidates that decide the answer are measured while generating, a
        calibrated device is recalibrated with each, and a measured candidate is
        kept or dropped by its measured latency (see :mod:`archgen.refinement`).
        For ``device="local"`` ``measure`` defaults to onnxruntime on this machine
        (:meth:`measure`). ``progress``: a progress bar once sampling has taken 2 s.

        A task learned on part of the space only (``mbv3``'s ``imagenet``: resolution
        224) fixes those decisions in every sample (:meth:`task_domain`).
        """
        from dataclasses import replace

        from .generation import generate

        given = {"samples": samples, "strength": strength, "proposals": proposals, "margin": margin}
        defaults = GuidanceSettings.for_space(self.space, measuring=bool(measurements),
                                              scores_choices=self.scores_choices)
        settings = replace(defaults, **{k: v for k, v in given.items() if v is not None})
        if measurements and measure is None and device == "local":
            measure = self.local_measure()
        self._use("device", device)
        for name in [task] if task is not None else [n for k, n in list(self._pending) if k == "task"]:
            self._use("task", name)  # without a task, the bundle's tasks decide whether one is implied
        with self._stored_hint(), torch_threads(self.threads):
            cands = generate(self.bundle, task=task, device=device, max_latency_ms=max_latency_ms, n=n,
                             generator=generator, seed=seed, settings=settings, data=self.data, measure=measure,
                             measurements=measurements, progress=progress)
        if wandb:
            from .experiment import log_generation

            log_generation(self, cands, run_dir)
        return cands

    def verify(self, cands: Candidates, *, settings=None, cache=None, progress: bool = True) -> Candidates:
        """Measure generated candidates on this machine with onnxruntime (:meth:`measure`,
        cached) and record it on each: ``measured_latency_ms``, ``measured_by``
        (:data:`~archgen.generation.MEASURED_HERE`) and ``over_budget`` against the
        request's budget. Meaningful for ``device="local"``; for another device it shows
        how this machine compares. Returns ``cands``."""
        from .generation import MEASURED_HERE

        measured = self.measure([c.arch for c in cands], settings=settings, cache=cache, progress=progress)
        return cands.record_measurements([m.latency_ms for m in measured], MEASURED_HERE)

    def __repr__(self) -> str:
        return f"ArchGen(space={self.space.name!r}, devices={len(self.devices())}, tasks={len(self.tasks())})"
