"""Designing where people deploy: ImageNet accuracy in Accel-NASBench (``anb``) and
OFA-MobileNetV3 (``mbv3``), devices whose milliseconds are per image, a task known at
one resolution only, and requests of 1,000 samples scored by the feature students."""

import json

import numpy as np
import pytest

from archgen import ArchGen
from archgen.api import bundled_path
from archgen.cli import main
from archgen.errors import DomainError
from archgen.generation import LARGE_SPACE_SAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def anb():
    return ArchGen.pretrained("anb")


@pytest.fixture(scope="module")
def mbv3():
    return ArchGen.pretrained("mbv3")


def test_anb_bundle_is_small_recorded_and_complete(anb):
    path = bundled_path("anb")
    assert path.stat().st_size < 5e6
    assert "archgen pretrain --space anb" in path.with_suffix(".md").read_text()
    assert set(anb.tasks()) == {"imagenet", "imagenet_top5"}
    assert set(anb.devices()) == {"zcu102", "a100_per_image", "3090_per_image", "tpuv2_per_image",
                                  "tpuv3_per_image", "zcu102_per_image"}
    assert set(anb.generators()) == {"diffusion", "autoregressive", "random"}
    assert anb.scores_choices  # the graph accuracy predictor through its student, latency directly
    assert anb.bundle.accuracy.student.r2 > 0.9
    assert anb.bundle.latency.model.config["encoder"] == "choices" and anb.bundle.latency.student is None


def test_throughput_devices_say_what_their_milliseconds_mean(anb):
    assert "1000 / throughput" in anb.device_note("tpuv3_per_image")
    assert "batch 1" in anb.device_note("zcu102")
    assert ArchGen.pretrained("nb201").device_note("pixel3") == ""


def test_anb_generation_under_a_budget_is_reproducible(anb):
    budget = float(np.median(anb.predict_latency(anb.space.sample(300, seed=3), "tpuv3_per_image").mean))
    first = anb.generate("imagenet", "tpuv3_per_image", budget, n=3, seed=0, progress=False)
    assert first.report.samples == LARGE_SPACE_SAMPLES and 1 <= len(first) <= 3
    for c in first:
        assert anb.space.parse(c.arch) == c.arch
        assert c.predicted_latency_ms + 1.5 * c.latency_std_ms <= budget + 1e-9
    assert [c.predicted_accuracy for c in first] == sorted((c.predicted_accuracy for c in first), reverse=True)
    again = anb.generate("imagenet", "tpuv3_per_image", budget, n=3, seed=0, progress=False)
    assert [c.arch for c in again] == [c.arch for c in first]


def test_anb_new_device_from_ten_measurements(anb, data_root):
    from conftest import require_table

    table = require_table("anb", data_root)
    rows = table.latency_rows("a100_per_image")
    pick = np.random.default_rng(0).choice(rows, 10, replace=False)
    cal = anb.calibrate_device("my_gpu", [table.archs[i] for i in pick], table.latency("a100_per_image")[pick],
                               replace=True)
    assert cal.k == 10
    cands = anb.generate("imagenet", "my_gpu", float(np.nanmedian(table.latency("a100_per_image"))), n=1,
                         seed=0, progress=False)
    assert len(cands) == 1


def test_mbv3_imagenet_is_known_at_224_only(mbv3):
    assert set(mbv3.tasks()) == {"imagenet", "proxy"}
    assert mbv3.task_domain("imagenet") == {"slot 0": "r224"} and mbv3.task_domain("proxy") == {}
    a160 = mbv3.space.sample(40, seed=0)
    a160 = [a for a in a160 if not a.startswith("r224:")][:3]
    with pytest.raises(DomainError, match="'r224'"):
        mbv3.predict_accuracy(a160, "imagenet")
    assert np.isfinite(mbv3.predict_accuracy(a160, "proxy").mean).all()
    cands = mbv3.generate("imagenet", "v100_1", 30.0, n=3, seed=0, progress=False)
    assert cands and all(c.arch.startswith("r224:") for c in cands)
    assert cands.report.samples == LARGE_SPACE_SAMPLES


def test_cli_generates_for_a_tpu_and_explains_the_unit(capsys, tmp_path):
    assert main(["generate", "--space", "anb", "--task", "imagenet", "--device", "tpuv3_per_image",
                 "--max-latency-ms", "1.0", "-n", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert "1000 / throughput" in captured.err
    result = json.loads(captured.out)
    assert result["device_note"] and result["candidates"]
    assert main(["show", "e1_k3_l1_se-e6_k3_l2_se-e5_k5_l2_se-e6_k3_l3_se-e6_k5_l3_se-e6_k5_l4_se-e6_k3_l1_se",
                 "--space", "anb"]) == 2
    assert "expansion 5 in stage 3; allowed: 1, 4, 6" in capsys.readouterr().err
