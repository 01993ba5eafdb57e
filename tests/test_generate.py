"""Generation through the public API and the CLI, on the shipped bundle."""

import csv
import json
import warnings

import numpy as np
import pytest
import torch

from archgen import ArchGen
from archgen.cli import main
from archgen.errors import BudgetError, GenerationWarning, UnknownNameError


@pytest.fixture(scope="module")
def ag():
    return ArchGen.pretrained("nb201")


@pytest.mark.parametrize("generator", ["diffusion", "autoregressive"])
def test_generate_known_device(ag, nb201, nb201_table, generator):
    budget = 12.0
    cands = ag.generate(task="cifar100", device="pixel3", max_latency_ms=budget, n=5, generator=generator, seed=0,
                        samples=200)
    assert len(cands) == 5
    accs = [c.predicted_accuracy for c in cands]
    assert accs == sorted(accs, reverse=True)  # best first
    margin = cands.report.settings["margin"]
    for c in cands:
        assert nb201.parse(c.arch) == c.arch and c.graph.num_nodes == 8
        assert c.predicted_latency_ms + margin * c.latency_std_ms <= budget
        row = nb201_table.row_of[c.arch]
        assert c.true_accuracy == pytest.approx(nb201_table.accuracy("cifar100")[row])
        assert c.true_latency_ms == pytest.approx(nb201_table.latency("pixel3")[row])
    assert len({nb201.equivalence_key(c.arch) for c in cands}) == 5  # de-duplicated by function
    report = cands.report
    assert report.validity == 1.0 and 0 < report.uniqueness <= 1 and report.returned == 5
    assert report.oracle_accuracy >= max(c.true_accuracy for c in cands)
    assert report.regret == pytest.approx(report.oracle_accuracy - cands[0].true_accuracy)
    assert 0 <= report.budget_satisfaction <= 1


def test_generate_is_reproducible(ag):
    a = ag.generate("cifar10", "gold_6240", 20.0, n=3, seed=11, samples=100)
    b = ag.generate("cifar10", "gold_6240", 20.0, n=3, seed=11, samples=100)
    assert [c.arch for c in a] == [c.arch for c in b]


def test_guided_beats_random_on_predicted_accuracy(ag):
    kwargs = dict(task="cifar100", device="pixel3", max_latency_ms=10.0, n=1, seed=0, samples=100)
    guided = ag.generate(generator="diffusion", **kwargs)[0].predicted_accuracy
    random = ag.generate(generator="random", **kwargs)[0].predicted_accuracy
    assert guided >= random


def test_calibrated_device_works_like_a_known_one(ag, nb201, nb201_table):
    archs = nb201.sample(10, seed=0)
    ag.calibrate_device("my_board", archs, nb201_table.latency("silver_4114")[nb201_table.rows(archs)], replace=True)
    budget = float(np.percentile(nb201_table.latency("silver_4114"), 50))
    cands = ag.generate("cifar100", "my_board", budget, n=3, generator="autoregressive", samples=200)
    assert len(cands) == 3
    assert all(c.true_latency_ms is None and c.true_accuracy is not None for c in cands)
    assert cands.report.regret is None  # the table does not know "my_board"


def test_candidate_builds_and_exports(ag, tmp_path):
    c = ag.generate("cifar10", "gold_6240", 25.0, n=1, samples=50)[0]
    module = c.to_module(num_classes=10)
    assert module(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    path = c.to_onnx(tmp_path / "c.onnx")
    assert path.stat().st_size > 1000
    assert json.dumps(c.to_dict())  # serialisable


def test_bad_requests(ag):
    with pytest.raises(UnknownNameError, match="unknown task 'imagenet'; valid: cifar10, cifar100"):
        ag.generate("imagenet", "pixel3", 12.0)
    with pytest.raises(UnknownNameError, match="unknown device 'jetson'; valid: 1080ti_1"):
        ag.generate("cifar10", "jetson", 12.0)
    with pytest.raises(UnknownNameError, match="unknown generator 'gan'; valid: autoregressive, diffusion, random"):
        ag.generate("cifar10", "pixel3", 12.0, generator="gan")
    for n in (0, -3):
        with pytest.raises(ValueError, match="n must be a positive int"):
            ag.generate("cifar10", "pixel3", 12.0, n=n)
    with pytest.raises(ValueError, match="max_latency_ms needs a device"):
        ag.generate("cifar10", None, 12.0)
    with pytest.raises(ValueError, match="max_latency_ms must be a positive number"):
        ag.generate("cifar10", "pixel3", -1.0)
    with pytest.raises(ValueError, match=r"samples \(10\) must be at least n \(20\)"):
        ag.generate("cifar10", "pixel3", 12.0, n=20, samples=10)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        ag.generate("cifar10", "pixel3", 12.0, margin=-1)


def test_budget_below_anything_achievable(ag):
    with pytest.raises(BudgetError, match=r"no architecture is predicted to run within 0.001 ms on 'pixel3': the fastest"):
        ag.generate("cifar10", "pixel3", 0.001, samples=100)


def test_shortfall_says_how_many_and_why(ag, nb201_table):
    budget = float(np.percentile(nb201_table.latency("pixel3"), 25))
    with pytest.warns(GenerationWarning, match=r"found \d+ of the 60 requested candidates: of 60 samples"):
        cands = ag.generate("cifar10", "pixel3", budget, n=60, samples=60)
    assert 0 < len(cands) < 60


def test_no_budget_ranks_by_accuracy_only(ag):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenerationWarning)
        cands = ag.generate("cifar10", n=3, samples=100)
    assert len(cands) == 3 and cands[0].predicted_latency_ms is None


def test_cli_generate_table_calibration_and_out(tmp_path, nb201, nb201_table, capsys):
    archs = nb201.sample(10, seed=1)
    path = tmp_path / "board.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for a, ms in zip(archs, nb201_table.latency("gold_6240")[nb201_table.rows(archs)]):
            w.writerow([a, ms])
    out = tmp_path / "out"
    code = main(["generate", "--task", "cifar100", "--device", "board", "--max-latency-ms", "15", "-n", "3",
                 "--calibration", str(path), "--samples", "100", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "calibrated 'board' from 10 measurements" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["#", "pred.", "acc"]
    assert [x.split()[0] for x in lines[1:4]] == ["1", "2", "3"] and lines[4].startswith("100 samples")
    result = json.loads((out / "candidates.json").read_text())
    assert len(result["candidates"]) == 3 and result["request"]["device"] == "board"
    assert all((out / c["onnx"]).is_file() for c in result["candidates"])
    assert (out / "accuracy_vs_latency.png").stat().st_size > 10_000


def test_cli_generate_errors(tmp_path, capsys):
    assert main(["generate", "--task", "cifar10", "--device", "pixel3", "--max-latency-ms", "0.001"]) == 2
    assert "no architecture is predicted to run within" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,ms\nx,1\n")
    assert main(["generate", "--task", "cifar10", "--device", "b", "--calibration", str(bad)]) == 2
    assert "needs columns arch,latency_ms; missing latency_ms" in capsys.readouterr().err
    assert main(["generate", "--task", "cifar10", "--calibration", str(bad)]) == 2
    assert "--calibration needs --device" in capsys.readouterr().err


def test_wandb_offline_run_holds_the_experiment(ag, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cands = ag.generate("cifar100", "pixel3", 12.0, n=3, samples=100, wandb=True, run_dir=tmp_path)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    table = json.loads(next((files / "media" / "table").glob("candidates_*.table.json")).read_text())
    assert len(table["data"]) == 3 and "true_accuracy" in table["columns"]
    assert list((files / "media" / "images").glob("accuracy_vs_latency_*.png"))
    result = json.loads((files / "generation.json").read_text())
    assert result["request"]["max_latency_ms"] == 12.0 and "strength" in result["guidance"]
    assert result["metrics"]["regret"] == pytest.approx(cands.report.regret)
    # config and summary live in the run's transaction log until it is synced
    log = next(runs[0].glob("*.wandb")).read_bytes()
    for key in (b"max_latency_ms", b"strength", b"validity", b"uniqueness", b"novelty", b"feasible_share",
                b"budget_satisfaction", b"regret"):
        assert key in log, key


def test_without_benchmark_data_true_metrics_stay_none(tmp_path):
    from archgen.experiment import plot_generation

    ag = ArchGen.pretrained("nb201", data=tmp_path)  # a folder without tables
    cands = ag.generate("cifar10", "pixel3", 15.0, n=2, samples=50)
    assert all(c.true_accuracy is None and c.true_latency_ms is None for c in cands)
    assert cands.report.regret is None and cands.report.oracle_accuracy is None
    assert plot_generation(ag, cands, tmp_path / "p.png").stat().st_size > 10_000  # predicted backdrop


def test_measuring_while_generating_keeps_the_budget_by_measurement(ag, nb201, nb201_table):
    """Hardware in the loop: the candidates that decide the answer are measured
    (here the table stands in for the device), the calibrated device learns each
    measurement, and the top candidates come back measured within budget."""
    lat = nb201_table.latency("silver_4114")
    calls = []

    def measure(archs):
        calls.append(list(archs))
        return lat[nb201_table.rows(archs)].tolist()

    archs = nb201.sample(10, seed=0)
    ag.calibrate_device("board_loop", archs, lat[nb201_table.rows(archs)], replace=True)
    budget = float(np.percentile(lat, 40))
    cands = ag.generate("cifar100", "board_loop", budget, n=2, seed=0, samples=200, measure=measure, measurements=6)
    spent = cands.report.measurements
    assert 1 <= spent <= 6 and len(calls) == spent and all(len(c) == 1 for c in calls)
    measured_archs, values = ag.bundle.latency.measurements("board_loop")
    assert len(measured_archs) == 10 + spent  # the device keeps what the loop measured
    for c in cands:
        if c.measured_latency_ms is not None:
            assert c.measured_latency_ms == pytest.approx(lat[nb201_table.row_of[c.arch]]) and c.measured_latency_ms <= budget
    assert cands[0].measured_latency_ms is not None  # the top answer is a measured one
    again = ag.generate("cifar100", "board_loop", budget, n=2, seed=0, samples=200, measure=measure, measurements=6)
    assert again.report.measurements <= spent  # what it measured before is known now
    ag.bundle.latency.forget("board_loop")


def test_measuring_while_generating_bad_input(ag, nb201):
    with pytest.raises(ValueError, match="needs a budget .* and measure="):
        ag.generate("cifar100", "pixel3", 12.0, n=1, samples=50, measurements=3)
    with pytest.raises(ValueError, match="measurements must be an int >= 0"):
        ag.generate("cifar100", "pixel3", 12.0, n=1, samples=50, measure=lambda a: [1.0], measurements=-1)
    with pytest.raises(ValueError, match=r"measure\(\) returned -1.0 ms for"):
        ag.generate("cifar100", "pixel3", 12.0, n=1, samples=50, measure=lambda a: [-1.0], measurements=2)
    with pytest.raises(ValueError, match=r"measure\(\) returned 2 values for 1 architecture"):
        ag.generate("cifar100", "pixel3", 12.0, n=1, samples=50, measure=lambda a: [1.0, 2.0], measurements=2)
    with pytest.raises(ValueError, match="pretrained latency target; it has no calibration measurements"):
        ag.bundle.latency.measurements("pixel3")


def test_shipped_accuracy_predictor_remembers_its_labels(ag, nb201_table):
    """NAS-Bench-201's bundle is pretrained on every CIFAR label and answers them
    from its label memory (predictors.memory); the network alone is far coarser."""
    archs = list(nb201_table.archs[::7])
    truth = nb201_table.accuracy("cifar100")[::7]
    remembered = ag.bundle.accuracy.predict(archs, "cifar100")
    network = ag.bundle.accuracy.predict(archs, "cifar100", remembered=False)
    assert np.median(np.abs(remembered.mean - truth)) < 0.5 < np.median(np.abs(network.mean - truth))
    assert np.median(remembered.std) < np.median(network.std)


def test_measuring_requests_draw_more_samples(nb201):
    from archgen.generation import MEASURING_PROPOSALS, MEASURING_SAMPLE_FACTOR, GuidanceSettings
    from archgen.spaces import get_space

    plain, measuring = GuidanceSettings.for_space(nb201), GuidanceSettings.for_space(nb201, measuring=True)
    assert measuring.samples == MEASURING_SAMPLE_FACTOR * plain.samples and measuring.proposals == MEASURING_PROPOSALS
    assert (measuring.strength, measuring.margin) == (plain.strength, plain.margin)
    large = get_space("fbnet")  # too large to enumerate: as many samples as a plain request
    assert GuidanceSettings.for_space(large, measuring=True) == GuidanceSettings.for_space(large)
