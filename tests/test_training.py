"""Training candidates on real images with the Lightning Trainer."""

import json
from pathlib import Path

import numpy as np
import pytest

from archgen.cli import main
from archgen.errors import DataError
from archgen.training import load_images, split_indices, train_candidate
from conftest import BEST_C10


def test_digits_are_real_and_complete():
    d = load_images("digits")
    assert d.images.shape == (1797, 1, 8, 8) and d.labels.max() == 9 and 0 <= d.images.min() <= d.images.max() <= 1


def test_stratified_split_is_reproducible(small_digits):
    a = split_indices(small_digits.labels, 3)
    b = split_indices(small_digits.labels, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(len(small_digits.labels)))
    assert set(small_digits.labels[a[2]]) == set(range(10))  # every class in the test split


def test_train_reports_test_accuracy_and_keeps_a_checkpoint(nb201, small_digits, tmp_path):
    result = train_candidate(nb201, BEST_C10, small_digits, epochs=4, batch_size=16, run_dir=tmp_path, progress=False)
    assert 50 < result.test_accuracy <= 100  # far above 10 % chance after 4 short epochs
    assert result.epochs == 4 and result.seconds_per_epoch > 0
    assert result.checkpoint and (tmp_path / "checkpoints").is_dir()
    again = train_candidate(nb201, BEST_C10, small_digits, epochs=4, batch_size=16, run_dir=tmp_path / "b",
                            progress=False)
    assert again.test_accuracy == result.test_accuracy  # same seed, same result


def test_npz_and_cli(tmp_path, capsys, small_digits):
    path = tmp_path / "d.npz"
    np.savez(path, images=(small_digits.images[:, 0] * 255).astype(np.uint8), labels=small_digits.labels)
    d = load_images(path)
    assert d.images.shape == (400, 1, 8, 8) and d.images.max() <= 1.0
    assert main(["train", BEST_C10, "--data", str(path), "--epochs", "1", "--run-dir", str(tmp_path / "r"),
                 "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epochs"] == 1 and 0 <= out["test_accuracy"] <= 100
    assert Path(out["checkpoint"]).is_file() and Path(out["checkpoint"]).is_relative_to(out["run_dir"])


def test_each_architecture_trains_in_its_own_folder(tmp_path, capsys, small_digits, nb201):
    """Checkpoints of different architectures never share a folder: runs/train/<space>-<hash>/."""
    from archgen.training import run_folder

    expected = [run_folder(tmp_path / "r" / "train", nb201, a) for a in (BEST_C10, nb201.sample(1, seed=5)[0])]
    path = tmp_path / "d.npz"
    np.savez(path, images=small_digits.images[:, 0], labels=small_digits.labels)
    other = nb201.sample(1, seed=5)[0]
    assert main(["train", BEST_C10, other, "--data", str(path), "--epochs", "1", "--run-dir", str(tmp_path / "r"),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    folders = [Path(r["run_dir"]) for r in rows]
    assert folders == expected
    assert folders[0] != folders[1] and all(f.parent == tmp_path / "r" / "train" for f in folders)
    assert folders[0].name.startswith("nb201-")
    for row, folder in zip(rows, folders):
        assert Path(row["checkpoint"]).parent == folder / "checkpoints"
        assert [p.name for p in (folder / "checkpoints").iterdir()] == [Path(row["checkpoint"]).name]
    assert main(["train", BEST_C10, "--data", str(path), "--epochs", "1", "--run-dir", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("test accuracy") and out[1].startswith("  checkpoint ")
    second = Path(out[1].split()[-1]).parent.parent
    assert second == folders[0].with_name(folders[0].name + "-2")  # the same arch again: beside its first run
    assert [p.name for p in (folders[0] / "checkpoints").iterdir()] == [Path(rows[0]["checkpoint"]).name]


def test_gpu_without_a_gpu_is_one_clear_line(monkeypatch, capsys, nb201, small_digits):
    import torch

    from archgen.errors import AcceleratorError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", BEST_C10, "--accelerator", "gpu", "--trainer-devices", "2"]) == 2
    assert capsys.readouterr().err == ("archgen train: error: --accelerator gpu: no CUDA GPU is visible to torch on "
                                       "this machine; use --accelerator cpu\n")
    with pytest.raises(AcceleratorError, match="accelerator='cuda': no CUDA GPU is visible"):
        train_candidate(nb201, BEST_C10, small_digits, accelerator="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["train", BEST_C10, "--accelerator", "gpu", "--trainer-devices", "2"]) == 2
    assert "--accelerator gpu asks for 2 devices, but torch sees 1 CUDA GPU on this machine" in capsys.readouterr().err


def test_bad_datasets(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 8, 8)), labels=np.array([0, 1, 2, 7]))
    with pytest.raises(DataError, match=r"label 7 is out of range \(allowed 0..2\)"):
        load_images(tmp_path / "bad.npz", num_classes=3)
    np.savez(tmp_path / "neg.npz", images=np.zeros((2, 8, 8)), labels=np.array([0, -1]))
    with pytest.raises(DataError, match="label -1 is out of range"):
        load_images(tmp_path / "neg.npz")
    np.savez(tmp_path / "keys.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="needs arrays 'images' and 'labels'"):
        load_images(tmp_path / "keys.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_images(tmp_path / "missing")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_images(tmp_path / "junk.npz")


def test_image_folders(tmp_path):
    from PIL import Image

    for label, size in (("cat", (8, 8)), ("dog", (8, 8))):
        (tmp_path / "ok" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", size, color=(10 * i, 0, 0)).save(tmp_path / "ok" / label / f"{i}.png")
    d = load_images(tmp_path / "ok")
    assert d.classes == ["cat", "dog"] and d.images.shape == (6, 3, 8, 8)
    Image.new("RGB", (9, 8)).save(tmp_path / "ok" / "dog" / "odd.png")
    with pytest.raises(DataError, match="mixed sizes: .*odd.png is 9x8"):
        load_images(tmp_path / "ok")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="one sub-folder of images per class"):
        load_images(tmp_path / "one")
    (tmp_path / "ok" / "dog" / "broken.png").write_bytes(b"nope")
    (tmp_path / "ok" / "dog" / "odd.png").unlink()
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        load_images(tmp_path / "ok")
