"""A task in the loop (archgen.task_learning): choose, train briefly, calibrate, generate;
proxy runs cached like measurements. Kept fast: k=4 proxy runs of 1 epoch on 300 digits."""

import dataclasses
import importlib.util
import json
import sqlite3

import numpy as np
import pytest

import archgen.task_learning as task_learning
from archgen import ArchGen
from archgen.cli import main
from archgen.errors import CacheError, DataError, RequestError
from archgen.task_learning import (
    ProxySettings,
    TaskLearning,
    TrainingCache,
    TrainingCacheError,
    dataset_fingerprint,
    training_cache_path,
)
from archgen.training import ImageDataset, TrainingResult, load_images

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")

#: four proxy runs of one epoch, in small batches (so that even one epoch ranks the four)
FAST = dict(k=4, epochs=1, batch_size=16, progress=False)


def _digits(per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    d = load_images("digits")
    keep = np.concatenate([np.flatnonzero(d.labels == c)[:per_class] for c in range(10)])
    return d.images[keep, 0], d.labels[keep]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """300 real digits (30 per class) as an .npz of 8x8 images and labels."""
    path = tmp_path_factory.mktemp("data") / "digits300.npz"
    images, labels = _digits()
    np.savez(path, images=images, labels=labels)
    return path


@pytest.fixture
def ag():
    return ArchGen.pretrained("nb201")


def _never_trains(job):
    raise AssertionError(f"trained {job[1]} although nothing should be trained")


def test_learns_a_task_caches_it_and_generates_for_it(ag, digits_npz, tmp_path):
    cache = tmp_path / "trainings.sqlite"
    first = ag.learn_task("my_digits", digits_npz, cache=cache, **FAST)
    assert isinstance(first, TaskLearning)
    assert first.trained == 4 and first.cached == 0 and len(first.archs) == len(first.accuracies) == 4
    assert first.archs == ag.choose_task_archs(4, seed=0)
    assert all(0 <= a <= 100 for a in first.accuracies) and len(set(first.accuracies)) > 1
    assert first.calibration.k == 4 and first.calibration.target == "my_digits"
    assert all(r.checkpoint is None for r in first.results)  # proxy runs keep no checkpoints
    with TrainingCache(cache) as store:
        assert len(store) == 4
    assert "my_digits" in ag.tasks()
    cands = ag.generate(task="my_digits", device="pixel3", max_latency_ms=12, n=2, progress=False)
    assert len(cands) >= 1 and all(c.predicted_latency_ms <= 12 for c in cands)

    again = ag.learn_task("my_digits", digits_npz, cache=cache, **FAST)  # replaces it, training nothing
    assert again.trained == 0 and again.cached == 4
    assert again.archs == first.archs and again.accuracies == first.accuracies

    later = ArchGen.pretrained("nb201")  # a later session: the calibration was stored
    assert [(c.kind, c.name, c.k, c.status) for c in later.calibrations()] == [("task", "my_digits", 4, "loaded")]
    assert later.generate(task="my_digits", device="pixel3", max_latency_ms=12, n=2, progress=False)
    json.dumps(first.to_dict())  # JSON-ready


def test_other_data_or_settings_train_again_same_images_do_not(ag, digits_npz, tmp_path, monkeypatch):
    cache = tmp_path / "trainings.sqlite"
    first = ag.learn_task("t", digits_npz, cache=cache, **FAST)
    images, labels = _digits()
    # the same images elsewhere, in another form: the fingerprint is of the arrays, not the file
    np.savez_compressed(tmp_path / "copy.npz", labels=labels, images=images)
    copy = ag.learn_task("t", tmp_path / "copy.npz", cache=cache, **FAST)
    assert copy.trained == 0 and copy.accuracies == first.accuracies and copy.dataset == first.dataset
    # one label changed: other data
    labels = labels.copy()
    labels[0] = (labels[0] + 1) % 10
    np.savez(tmp_path / "changed.npz", images=images, labels=labels)
    changed = ag.learn_task("t", tmp_path / "changed.npz", cache=cache, **FAST)
    assert changed.trained == 4 and changed.dataset != first.dataset
    # other settings: each is part of the key
    for change in (dict(epochs=2), dict(lr=0.1), dict(batch_size=32), dict(seed=1)):
        other = ag.learn_task("t", digits_npz, cache=cache, **{**FAST, **change})
        assert other.trained == 4, change
    with TrainingCache(cache) as store:
        assert len(store) == 4 * 6
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    for change in ({}, dict(epochs=2), dict(seed=1)):  # and all of them are there now
        assert ag.learn_task("t", digits_npz, cache=cache, **{**FAST, **change}).trained == 0


def test_fingerprint_is_of_the_arrays():
    images, labels = _digits(5)
    data = ImageDataset(images[:, None].astype(np.float32), labels, [str(c) for c in range(10)], "a")
    same = ImageDataset(data.images.copy(), data.labels.copy(), data.classes, "elsewhere")
    assert dataset_fingerprint(data) == dataset_fingerprint(same)
    pixel = data.images.copy()
    pixel[3, 0, 4, 4] += 1 / 16
    assert dataset_fingerprint(dataclasses.replace(data, images=pixel)) != dataset_fingerprint(data)
    more_classes = dataclasses.replace(data, classes=[*data.classes, "extra"])  # another classifier width
    assert dataset_fingerprint(more_classes) != dataset_fingerprint(data)
    assert ProxySettings().key() != ProxySettings(threads=2).key()
    assert training_cache_path().name == "trainings.sqlite"
    assert training_cache_path().parent == task_learning.cache_folder()


def test_finished_runs_survive_an_interruption(ag, digits_npz, tmp_path, monkeypatch):
    cache = tmp_path / "trainings.sqlite"
    real, calls = task_learning._proxy_job, []

    def interrupted_third(job):
        calls.append(job[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(task_learning, "_proxy_job", interrupted_third)
    with pytest.raises(KeyboardInterrupt):
        ag.learn_task("t", digits_npz, cache=cache, **FAST)
    with TrainingCache(cache) as store:
        assert len(store) == 2  # each committed as it finished
    monkeypatch.setattr(task_learning, "_proxy_job", real)
    assert ag.learn_task("t", digits_npz, cache=cache, **FAST).trained == 2


def test_cli_round_trip(digits_npz, tmp_path, capsys):
    cache = str(tmp_path / "trainings.sqlite")
    args = ["learn-task", "cli_digits", "--data", str(digits_npz), "-k", "4", "--epochs", "1", "--batch-size", "16",
            "--cache", cache, "--no-progress"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "cli_digits" and out["trained"] == 4 and out["cached"] == 0 and len(out["archs"]) == 4
    assert out["calibration"]["k"] == 4 and out["settings"]["epochs"] == 1
    assert main(args) == 0  # a second command: all cached
    text = capsys.readouterr().out
    assert "4 architectures, 0 trained, 4 cached" in text and "fit Spearman" in text
    for row in out["archs"]:
        assert f"{row['test_accuracy']:12.2f}%  {row['arch']}" in text
    # a later command finds the task in the calibration store
    assert main(["generate", "--task", "cli_digits", "--device", "pixel3", "--max-latency-ms", "12", "-n", "2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["calibrations", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["calibrations"]
    assert [(c["kind"], c["name"], c["status"]) for c in listed] == [("task", "cli_digits", "loaded")]


def test_bad_data_is_a_clear_error_before_any_training(ag, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    cache = tmp_path / "trainings.sqlite"
    with pytest.raises(DataError, match="does not exist"):
        ag.learn_task("t", tmp_path / "missing.npz", cache=cache, **FAST)
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((20, 8, 8)))
    with pytest.raises(DataError, match="needs arrays 'images' and 'labels'"):
        ag.learn_task("t", tmp_path / "nolabels.npz", cache=cache, **FAST)
    np.savez(tmp_path / "one_class.npz", images=np.random.rand(40, 8, 8), labels=np.zeros(40, dtype=int))
    with pytest.raises(DataError, match="at least 2 classes, found 1"):
        ag.learn_task("t", tmp_path / "one_class.npz", cache=cache, **FAST)
    np.savez(tmp_path / "tiny.npz", images=np.random.rand(4, 8, 8), labels=np.array([0, 0, 1, 1]))
    with pytest.raises(DataError, match="too few images"):
        ag.learn_task("t", tmp_path / "tiny.npz", cache=cache, **FAST)
    (tmp_path / "notes.txt").write_text("not images")
    with pytest.raises(DataError, match="expected an .npz file or a folder"):
        ag.learn_task("t", tmp_path / "notes.txt", cache=cache, **FAST)
    with pytest.raises(DataError, match="data must be"):
        ag.learn_task("t", 42, cache=cache, **FAST)
    assert not cache.exists()  # refused before the cache was even opened
    assert main(["learn-task", "t", "--data", str(tmp_path / "one_class.npz"), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgen learn-task: error: ") and "at least 2 classes" in err and "Traceback" not in err


def test_bad_requests_fail_before_any_training(ag, digits_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    for kwargs, message in ((dict(k=1), "k must be from 2"), (dict(epochs=0), "epochs must be from 1"),
                            (dict(lr=float("nan")), "lr must be a finite number > 0"),
                            (dict(batch_size=True), "batch_size must be an int"), (dict(seed=-1), "seed must be")):
        with pytest.raises(RequestError, match=message):
            ag.learn_task("t", digits_npz, cache=tmp_path / "c.sqlite", **{**FAST, **kwargs})
    with pytest.raises(RequestError, match="pretrained task"):
        ag.learn_task("cifar10", digits_npz, cache=tmp_path / "c.sqlite", **FAST)
    with pytest.raises(ValueError, match="cannot be stored: it holds a path separator") as bad_name:
        ag.learn_task("a/b", digits_npz, cache=tmp_path / "c.sqlite", **FAST)
    assert "persist" not in str(bad_name.value)
    assert main(["learn-task", "t", "-k", "1"]) == 2
    assert "error: -k must be from 2" in capsys.readouterr().err


def test_equal_accuracies_say_what_to_change(ag, digits_npz, tmp_path, monkeypatch):
    def chance(job):
        return TrainingResult(job[1], 10.0, 10.0, 1, 0.1, 0.1, None, "x")

    monkeypatch.setattr(task_learning, "_proxy_job", chance)
    with pytest.raises(RequestError, match=r"all equal \(10%\).*train longer \(epochs, now 1\).*cached"):
        ag.learn_task("t", digits_npz, cache=tmp_path / "c.sqlite", **FAST)
    assert "t" not in ag.tasks()


def _result(k: int, accuracy: float = 50.0) -> TrainingResult:
    return TrainingResult(f"arch{k}", accuracy, accuracy, 1, 1.0, 1.0, None, "digits")


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_damaged_training_cache_is_refused_untouched(ag, digits_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    folder = tmp_path / "caches"
    folder.mkdir()
    path = folder / "trainings.sqlite"
    with TrainingCache(path) as cache:
        for k in range(2000):
            cache.put("nb201", f"arch{k}", "fingerprint", ProxySettings(), _result(k))
    data = bytearray(path.read_bytes())
    page = 4096
    middle = len(data) // page // 2 * page
    data[middle:middle + page] = bytes((7 * i + 3) % 251 for i in range(page))
    path.write_bytes(bytes(data))
    before = _snapshot(folder)
    with pytest.raises(TrainingCacheError, match="integrity check failed") as refused:
        ag.learn_task("t", digits_npz, cache=path, **FAST)
    message = str(refused.value)
    assert "not a readable archgen training cache" in message and "nothing in it was changed" in message
    assert isinstance(refused.value, CacheError)
    assert _snapshot(folder) == before  # same bytes, no -wal/-shm/-journal beside it
    # a measurement cache is not a training cache
    from archgen.measurements import MeasurementCache

    with MeasurementCache(folder / "measurements.sqlite"):
        pass
    before = _snapshot(folder)
    with pytest.raises(TrainingCacheError, match="another application"):
        ag.learn_task("t", digits_npz, cache=folder / "measurements.sqlite", **FAST)
    assert _snapshot(folder) == before
    with pytest.raises(TrainingCacheError, match="is a folder"):
        TrainingCache(folder)
    assert "t" not in ag.tasks()


def test_unusable_results_are_not_stored_nor_reused(tmp_path):
    path = tmp_path / "t.sqlite"
    with TrainingCache(path) as cache:
        for bad in (dict(test_accuracy=float("nan")), dict(val_accuracy=101.0), dict(epochs=0),
                    dict(seconds=-1.0)):
            with pytest.raises(TrainingCacheError, match=f"refusing to store .*{next(iter(bad))}="):
                cache.put("nb201", "a", "d", ProxySettings(), dataclasses.replace(_result(0), **bad))
        assert len(cache) == 0
        cache.put("nb201", "a", "d", ProxySettings(), _result(0))
        assert cache.get("nb201", "a", "d", ProxySettings()) == _result(0)
        assert cache.get("nb201", "a", "d", ProxySettings(epochs=4)) is None
    db = sqlite3.connect(path)
    db.execute("UPDATE trainings SET result = ?", (json.dumps({**_result(0).to_dict(), "test_accuracy": 250.0}),))
    db.commit()
    db.close()
    with TrainingCache(path) as cache, pytest.warns(RuntimeWarning, match="ignoring the stored training"):
        assert cache.get("nb201", "a", "d", ProxySettings()) is None


def test_default_cache_lives_beside_the_measurement_cache(ag, digits_npz, monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHGEN_CACHE", str(tmp_path / "elsewhere" / "measurements.sqlite"))
    learned = ag.learn_task("t", digits_npz, **FAST)
    assert learned.trained == 4 and (tmp_path / "elsewhere" / "trainings.sqlite").is_file()
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    assert ag.learn_task("t", digits_npz, **FAST).trained == 0
    with pytest.raises(AssertionError, match="although nothing should be trained"):  # cache=False: none read
        ag.learn_task("t", digits_npz, cache=False, **FAST)


@needs_ray
def test_ray_equals_serial_and_fills_the_cache(ag, digits_npz, tmp_path, monkeypatch):
    serial = ag.learn_task("t", digits_npz, cache=False, **FAST)
    on_ray = ag.learn_task("t", digits_npz, cache=tmp_path / "ray.sqlite", ray=True, workers=2, **FAST)
    assert on_ray.archs == serial.archs and on_ray.accuracies == serial.accuracies and on_ray.trained == 4
    monkeypatch.setattr(task_learning, "_proxy_job", _never_trains)
    again = ag.learn_task("t", digits_npz, cache=tmp_path / "ray.sqlite", **FAST)
    assert again.trained == 0 and again.accuracies == serial.accuracies
