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
        with pytest.raises(ValueError, match="n must be from 1 to 10,000"):
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
    import onnx

    for c in result["candidates"]:  # CIFAR-100's classes, the candidate's own input
        assert c["num_classes"] == 100 and c["input_shape"] == [1, 3, 32, 32]
        model = onnx.load(str(out / c["onnx"]))
        assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 100
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
    with pytest.raises(ValueError, match="measurements must be from 0 to 50, got -1"):
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


def test_request_limits(ag):
    """Every count has an upper limit, said in the error, so a typo never allocates for minutes."""
    from archgen.errors import RequestError
    from archgen.validation import MAX_CANDIDATES, MAX_PROPOSALS, MAX_SAMPLES

    for kwargs, message in (
        ({"n": MAX_CANDIDATES + 1}, r"n must be from 1 to 10,000, got 10,001"),
        ({"samples": MAX_SAMPLES + 1}, r"samples must be from 1 to 100,000, got 100,001"),
        ({"proposals": MAX_PROPOSALS + 1}, r"proposals must be from 1 to 1,024, got 1,025"),
        ({"seed": -1}, r"seed must be an int from 0 to 2\*\*63-1, got -1"),
        ({"seed": 2**64}, r"seed must be an int from 0 to 2\*\*63-1"),
        ({"n": 2.5}, r"n must be an int from 1 to 10,000, got 2.5"),
        ({"strength": float("nan")}, r"strength must be a finite number >= 0"),
    ):
        with pytest.raises(RequestError, match=message):  # an ArchGenError and a ValueError
            ag.generate("cifar10", "pixel3", 12.0, **kwargs)


def test_task_may_be_left_out_only_where_the_bundle_has_one(ag):
    with pytest.raises(ValueError, match=r"task=... is needed: the nb201 bundle has 2 tasks \(cifar10, cifar100\)"):
        ag.generate(device="pixel3", max_latency_ms=12.0)
    with pytest.raises(UnknownNameError, match=r"unknown task 'cifar1000' \(did you mean 'cifar100'\?\).*"
                                               r"ArchGen.calibrate_task"):
        ag.generate("cifar1000", "pixel3", 12.0)
    with pytest.raises(UnknownNameError, match=r"unknown device 'pixl3' \(did you mean 'pixel3'\?\).*"
                                               r"--calibration FILE.csv / ArchGen.calibrate_device, or --device local"):
        ag.generate("cifar10", "pixl3", 12.0)


def test_candidates_build_their_task_classifier(ag, tmp_path):
    from archgen.generation import TASK_CLASSES, task_classes
    from archgen.spaces import get_space

    c100 = ag.generate("cifar100", "gold_6240", 25.0, n=1, samples=50)[0]
    assert c100.num_classes == 100 and c100.to_module()(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    assert c100.to_module(num_classes=7)(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    d = c100.to_dict()
    assert d["num_classes"] == 100 and d["input_shape"] == [1, 3, 32, 32]
    assert ag.generate("cifar10", "gold_6240", 25.0, n=1, samples=50)[0].num_classes == 10
    assert TASK_CLASSES["imagenet"] == TASK_CLASSES["imagenet_top5"] == 1000
    assert task_classes(get_space("fbnet"), "proxy") == 100  # the space's own (CIFAR-100 setting)
    assert task_classes(get_space("mbv3"), "imagenet") == 1000
    assert task_classes(get_space("nb201"), "my_calibrated_task") == 10


def test_torch_threads_are_set_for_the_request_and_restored(ag, monkeypatch):
    import archgen.generation
    from archgen.api import ArchGen

    seen = []
    real = archgen.generation.generate

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(archgen.generation, "generate", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ag.generate("cifar10", "pixel3", 12.0, n=1, samples=20)
        assert seen[-1] == 1 and torch.get_num_threads() == 2
        ArchGen(ag.bundle, threads=None).generate("cifar10", "pixel3", 12.0, n=1, samples=20)
        assert seen[-1] == 2  # None: torch's setting as it is
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be from 1 to 1,024, got 0"):
        ArchGen(ag.bundle, threads=0)


def test_measured_candidates_are_marked_over_budget(ag):
    from archgen.cli.generate import candidate_table, summary_line

    cands = ag.generate("cifar100", "pixel3", 12.0, n=3, samples=100)
    cands.record_measurements([11.0, 12.5, 3.0], "onnxruntime_here")
    assert [c.over_budget for c in cands] == [False, True, False]
    assert cands.over_budget() == [cands[1]]
    d = cands[1].to_dict()
    assert d["measured_latency_ms"] == 12.5 and d["measured_by"] == "onnxruntime_here" and d["over_budget"] is True
    table = candidate_table(cands).splitlines()
    assert "vs budget" in table[0] and "measured here ms" in table[0]
    assert "OVER" in table[2] and "OVER" not in table[1] + table[3]
    assert "1 of 3 measured over budget" in summary_line(cands)
    with pytest.raises(ValueError, match="got 2 measured latencies for 3 candidates"):
        cands.record_measurements([1.0, 2.0], "x")


def test_cli_verify_marks_candidates_over_budget(tmp_path, capsys, monkeypatch):
    """--verify measures here (stubbed: fixed latencies) and writes one measured-latency field."""
    from types import SimpleNamespace

    from archgen.api import ArchGen

    monkeypatch.setattr(ArchGen, "measure", lambda self, archs, **kw: [
        SimpleNamespace(latency_ms=ms) for ms, _ in zip([20.0, 5.0], archs)])
    args = ["generate", "--task", "cifar10", "--device", "pixel3", "--max-latency-ms", "12", "-n", "2",
            "--samples", "50", "--verify"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["candidates"]
    assert [r["measured_latency_ms"] for r in rows] == [20.0, 5.0]
    assert [r["over_budget"] for r in rows] == [True, False]
    assert all(r["measured_by"] == "onnxruntime_here" and "measured_latency_ms_here" not in r for r in rows)
    assert result["measured_over_budget"] == 1
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 of 2 measured over budget" in out and "OVER" in out.splitlines()[1]


def test_cli_errors_name_flags(capsys):
    cases = [
        (["--task", "cifar10", "--device", "pixel3", "--max-latency-ms", "-1"],
         "--max-latency-ms must be a positive number of milliseconds, got -1.0"),
        (["--task", "cifar10", "--max-latency-ms", "5"],
         "--max-latency-ms needs a device to predict latency on; pass --device DEVICE"),
        (["--device", "pixel3"], "--task TASK is needed: the nb201 bundle has 2 tasks (cifar10, cifar100)"),
        (["--task", "cifar10", "-n", "20", "--samples", "10"], "--samples (10) must be at least -n (20)"),
        (["--task", "cifar10", "-n", "0"], "-n must be from 1 to 10,000, got 0"),
        (["--task", "cifar10", "--seed", "-1"], "--seed must be an int from 0 to 2**63-1, got -1"),
        (["--task", "cifar10", "--proposals", "5000"], "--proposals must be from 1 to 1,024, got 5,000"),
        (["--task", "cifar10", "--threads", "-1"], "--threads must be >= 1, or 0 for torch's own pool"),
        (["--task", "cifar10", "--device", "pixl3"], "unknown device 'pixl3' (did you mean 'pixel3'?)"),
    ]
    for args, message in cases:
        assert main(["generate", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("archgen generate: error: ") and message in err, (args, err)
        assert "Traceback" not in err


def test_accuracy_vs_latency_figure_focuses_and_labels(ag, tmp_path):
    from archgen.experiment import generation_figure, plot_generation

    cands = ag.generate("cifar100", "pixel3", 12.0, n=3, samples=100)
    fig = generation_figure(ag, cands)
    ax = fig.axes[0]
    assert "cifar100" in ax.get_title() and "pixel3" in ax.get_title() and "budget 12 ms" in ax.get_title()
    assert ax.get_ylabel() == "accuracy on cifar100 (%)" and ax.get_xlabel() == "latency on pixel3 (ms)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "budget 12 ms" in legend and any("1.5 x median spread" in t and "safety margin" in t for t in legend)
    low, high = ax.get_ylim()
    assert 30 < low < min(c.predicted_accuracy for c in cands) and high > max(c.true_accuracy for c in cands)
    assert ax.get_xlim()[1] >= 12.0
    # a thin line from each candidate's predicted point to its true one (the table knows them all)
    links = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]]
    assert len(links) == 3
    assert plot_generation(ag, cands, tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fbnet_request_without_task_and_an_honest_proxy_axis(tmp_path):
    """FBNet's bundle has one task (the log2-MACs proxy): generate() takes none, the
    network gets the space's 100 classes, and the plot does not call the proxy a percentage."""
    from archgen.experiment import generation_figure

    fbnet = ArchGen.pretrained("fbnet")
    cands = fbnet.generate(device="pixel3", max_latency_ms=25.0, n=1, samples=10, progress=False)
    assert cands.report.request["task"] == "proxy" and cands[0].num_classes == 100
    ax = generation_figure(fbnet, cands).axes[0]
    assert ax.get_ylabel() == "log2 MACs (proxy)" and "%" not in ax.get_ylabel()
