"""The public API on the shipped bundle, and the pretraining command end to end."""

import re

import numpy as np
import pytest
from scipy.stats import spearmanr

from archgen import ArchGen
from archgen.api import bundled_path
from archgen.cli import main
from archgen.errors import UnknownNameError
from conftest import BEST_C10


@pytest.fixture(scope="module")
def ag():
    return ArchGen.pretrained("nb201")


def test_shipped_bundle_is_small_and_documented():
    path = bundled_path("nb201")
    assert path.is_file() and path.stat().st_size < 8e6
    recipe = path.with_suffix(".md").read_text()
    assert "archgen pretrain --space nb201" in recipe


def test_generation_needs_no_torch_geometric():
    """The shipped NB201 bundle carries every architecture's features and the
    generators need only torch: a cold `generate` never imports torch_geometric
    (1.8 s of import time)."""
    import subprocess
    import sys

    code = ("import sys; from archgen import ArchGen; "
            "c = ArchGen.pretrained('nb201').generate('cifar100', 'pixel3', 12.0, n=2, samples=20); "
            "assert len(c) == 2; print(sorted(m for m in sys.modules if m.startswith('torch_geometric')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names(ag):
    assert "pixel3" in ag.devices() and len(ag.devices()) == 21
    assert ag.tasks() == ["cifar10", "cifar100"]
    assert ag.generators() == ["diffusion", "autoregressive", "random"]


def test_predictions_on_known_targets(ag, nb201_table):
    archs = list(nb201_table.archs[:3000])
    lat = ag.predict_latency(archs, device="pixel3")
    assert lat.unit == "ms" and lat.mean.shape == (3000,) and (lat.std > 0).all()
    assert spearmanr(lat.mean, nb201_table.latency("pixel3")[:3000])[0] > 0.9
    acc = ag.predict_accuracy(archs, task="cifar10")
    assert acc.unit == "%" and spearmanr(acc.mean, nb201_table.accuracy("cifar10")[:3000])[0] > 0.8
    assert 80 < np.median(acc.mean) < 95


def test_calibrate_device_then_predict(ag, nb201):
    archs = nb201.sample(10, seed=0)
    # a made-up board twice as slow as gold_6240
    ms = 2 * ag.predict_latency(archs, device="gold_6240").mean
    cal = ag.calibrate_device("my_board", archs, ms)
    assert cal.k == 10 and cal.seconds < 5
    assert "my_board" in ag.devices()
    others = nb201.sample(200, seed=1)
    mine = ag.predict_latency(others, device="my_board").mean
    ref = ag.predict_latency(others, device="gold_6240").mean
    assert spearmanr(mine, ref)[0] > 0.95
    assert np.median(mine / ref) == pytest.approx(2.0, rel=0.15)
    # graphs work like strings
    assert ag.predict_latency([nb201.to_graph(BEST_C10)], device="my_board").mean.shape == (1,)


def test_calibrate_task(ag, nb201, nb201_table):
    archs = nb201.sample(20, seed=3)
    acc = nb201_table.accuracy("cifar100")[nb201_table.rows(archs)]
    ag.calibrate_task("my_task", archs, acc)
    assert "my_task" in ag.tasks()
    assert ag.predict_accuracy(archs[:3], task="my_task").mean.shape == (3,)


def test_unknown_names(ag):
    with pytest.raises(UnknownNameError, match="valid: 1080ti_1"):
        ag.predict_latency([BEST_C10], device="jetson")
    with pytest.raises(KeyError, match="unknown search space"):
        ArchGen.pretrained("nb999")
    with pytest.raises(FileNotFoundError):
        ArchGen.pretrained("nb201", path="/nonexistent/bundle.pt")


def test_pretrain_command_with_offline_wandb(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "b.pt"
    code = main(["pretrain", "--space", "nb201", "--devices", "gold_6240,pixel3", "--tasks", "cifar10",
                 "--latency-epochs", "1", "--accuracy-epochs", "1", "--generators", "diffusion", "--generator-epochs", "1",
                 "--wandb", "--run-dir", str(tmp_path / "runs"),
                 "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "wrote" in printed
    # seconds readable ("trained in 16 min 3 s (latency 2 min 2 s, ...)"), never a dict or 963.2841
    assert re.search(r"trained in (\d+ min )?\d+(\.\d)? s \(latency ", printed) and "{" not in printed
    group = re.search(r"W&B runs in group (pretrain-nb201-\d{8}-\d{6})", printed).group(1)
    ag = ArchGen.pretrained("nb201", path=out)
    assert ag.bundle.meta["wandb_group"] == group
    assert ag.devices() == ["gold_6240", "pixel3"] and ag.tasks() == ["cifar10"]
    assert ag.generators() == ["diffusion", "random"]
    assert len(ag.generate("cifar10", "pixel3", 30.0, n=2, samples=20)) == 2
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # one run per predictor and generator
    assert all(any(r.glob("*.wandb")) for r in runs)
    # ... all in the invocation's one W&B group
    assert all(group.encode() in next(r.glob("*.wandb")).read_bytes() for r in runs)


def test_pretrain_rejects_unknown_names(capsys):
    assert main(["pretrain", "--exclude-devices", "jetson", "--no-progress"]) == 2
    assert "unknown device of the nb201 table 'jetson'" in capsys.readouterr().err
    assert main(["pretrain", "--generators", "gan", "--no-progress"]) == 2
    assert "unknown generator 'gan'; valid: autoregressive, diffusion" in capsys.readouterr().err


def test_pretrain_without_benchmark_data_names_the_flag(capsys):
    assert main(["pretrain", "--data", "/nonexistent", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archgen pretrain: error: no benchmark table for nb201 under /nonexistent: "
                          "pass --data DIR or set ARCHGEN_DATA")
    assert "root=" not in err and "Traceback" not in err


def test_gpu_without_a_gpu_is_one_clear_line(monkeypatch, capsys):
    import torch

    from archgen.errors import AcceleratorError
    from archgen.pretrain import pretrain_bundle

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["pretrain", "--accelerator", "gpu", "--no-progress"]) == 2
    assert capsys.readouterr().err == ("archgen pretrain: error: --accelerator gpu: no CUDA GPU is visible to torch "
                                       "on this machine; use --accelerator cpu\n")
    with pytest.raises(AcceleratorError, match="accelerator='gpu': no CUDA GPU is visible to torch"):
        pretrain_bundle("nb201", trainer_options={"accelerator": "gpu"})


def test_unknown_task_suggests_and_says_how_to_add_one(ag):
    with pytest.raises(UnknownNameError, match=r"unknown task 'cifar1000' \(did you mean 'cifar100'\?\); "
                                               r"valid: cifar10, cifar100.*ArchGen.calibrate_task"):
        ag.predict_accuracy([BEST_C10], task="cifar1000")
    with pytest.raises(UnknownNameError, match=r"unknown device 'Pixel3' \(did you mean 'pixel3'\?\)"):
        ag.predict_latency([BEST_C10], device="Pixel3")


def test_threads_are_checked():
    with pytest.raises(ValueError, match="threads must be from 1 to 1,024, got -2"):
        ArchGen.pretrained("nb201", threads=-2)
