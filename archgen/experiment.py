"""Generation experiments: the accuracy-vs-latency plot and Weights & Biases tracking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: architectures drawn to show the space when no benchmark table covers the request
BACKDROP_SAMPLES = 2000


def _backdrop(ag, cands) -> tuple[np.ndarray, np.ndarray, str]:
    """(accuracy, latency, label) of the whole space: true values from the
    benchmark table where it has them, else predictions for a random sample."""
    from .generation import true_columns

    req = cands.report.request
    table, acc, lat = true_columns(ag.space, ag.data, req["task"], req["device"])
    if acc is not None and lat is not None:
        return acc, lat, f"{ag.space.name} table (true, {len(acc):,} archs)"
    archs = ag.space.sample(BACKDROP_SAMPLES, seed=0) if ag.space.size is None or ag.space.size > BACKDROP_SAMPLES \
        else list(ag.space.enumerate())
    return (ag.predict_accuracy(archs, req["task"]).mean, ag.predict_latency(archs, req["device"]).mean,
            f"{len(archs):,} random archs (predicted)")


def plot_generation(ag, cands, path: str | os.PathLike) -> Path:
    """Save the accuracy-vs-latency plot: the space, the generated samples, the
    returned candidates and the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report, req = cands.report, cands.report.request
    if req["device"] is None:
        raise ValueError("the accuracy-vs-latency plot needs a device")
    acc, lat, label = _backdrop(ag, cands)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.scatter(lat, acc, s=3, c="0.75", label=label, rasterized=True)
    ax.scatter(report.sample_latency_ms, report.sample_accuracy, s=8, c="tab:blue", alpha=0.6,
               label=f"generated ({len(report.sample_archs)} distinct, predicted)")
    ax.scatter([c.predicted_latency_ms for c in cands], [c.predicted_accuracy for c in cands], s=90, marker="*",
               c="tab:red", label=f"top {len(cands)} (predicted)", zorder=3)
    known = [c for c in cands if c.true_accuracy is not None and c.true_latency_ms is not None]
    if known:
        ax.scatter([c.true_latency_ms for c in known], [c.true_accuracy for c in known], s=60, marker="o",
                   facecolors="none", edgecolors="k", label="top candidates (true)", zorder=3)
    if req["max_latency_ms"] is not None:
        ax.axvline(req["max_latency_ms"], color="tab:red", ls="--", lw=1, label=f"budget {req['max_latency_ms']} ms")
    ax.set_xlabel(f"latency on {req['device']} (ms)")
    ax.set_ylabel(f"accuracy on {req['task']} (%)")
    ax.set_title(f"{req['generator']} generation, {req['space']}")
    ax.set_ylim(bottom=max(0.0, float(np.percentile(acc, 1)) - 5))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def log_generation(ag, cands, run_dir: str | os.PathLike = "runs") -> Path:
    """Log one generation request as a W&B run (offline unless logged in):
    config = request + generator settings; a ``candidates`` table with predicted
    and true metrics; summary metrics; the accuracy-vs-latency plot; and the
    whole result as ``generation.json`` among the run's files. Returns the run's
    local folder."""
    import wandb

    from .tracking import wandb_mode

    report = cands.report
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    gen = ag.bundle.generators[report.request["generator"]]
    config = {"request": report.request, "guidance": report.settings,
              "generator": {"kind": gen.kind, **gen.config.to_dict()}}
    run = wandb.init(project="archgen", job_type="generate", dir=str(run_dir), mode=wandb_mode(), config=config,
                     name=f"generate-{report.request['task']}-{report.request['device']}-{report.request['generator']}",
                     reinit="create_new")
    try:
        columns = ["rank", "arch", "predicted_accuracy", "accuracy_std", "predicted_latency_ms", "latency_std_ms",
                   "true_accuracy", "true_latency_ms", "measured_latency_ms", "novel"]
        table = wandb.Table(columns=columns)
        for rank, c in enumerate(cands, start=1):
            d = c.to_dict()
            table.add_data(rank, *(d[k] for k in columns[1:]))
        log = {"candidates": table}
        if report.request["device"] is not None:
            plot = plot_generation(ag, cands, Path(run.dir) / "accuracy_vs_latency.png")
            log["accuracy_vs_latency"] = wandb.Image(str(plot))
        run.log(log)
        for key, value in report.metrics().items():
            if value is not None:
                run.summary[key] = value
        (Path(run.dir) / "generation.json").write_text(json.dumps(
            {**config, "metrics": report.metrics(), "candidates": [c.to_dict() for c in cands]}, indent=2))
        return Path(run.dir).parent
    finally:
        run.finish()
