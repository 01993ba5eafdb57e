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


def _label(task: str) -> str:
    """The accuracy axis' name: a percentage, or what the training-free proxy really is."""
    from .complexity import PROXY_TASK

    return "log2 MACs (proxy)" if task == PROXY_TASK else f"accuracy on {task} (%)"


def _true_point(c) -> tuple[float, float] | None:
    """Where a candidate really is: its true (or measured) latency and true accuracy,
    each falling back to the prediction where only the other is known; None when neither is."""
    latency = c.true_latency_ms if c.true_latency_ms is not None else c.measured_latency_ms
    if latency is None and c.true_accuracy is None:
        return None
    return (latency if latency is not None else c.predicted_latency_ms,
            c.true_accuracy if c.true_accuracy is not None else c.predicted_accuracy)


def _limits(values: np.ndarray, pad: float = 0.05) -> tuple[float, float]:
    low, high = float(np.min(values)), float(np.max(values))
    span = (high - low) or abs(high) or 1.0
    return low - pad * span, high + pad * span


#: the axes show the backdrop from this percentile of its accuracies among the archs in
#: the candidates' latency window, so that broken networks (NB201 cells whose input never
#: reaches the output, at chance accuracy) do not squash the region of interest to a line
FOCUS_PERCENTILE = 10


def generation_figure(ag, cands):
    """The accuracy-vs-latency figure of a request (a matplotlib ``Figure``): the space
    (true table values, else predictions for a random sample), the generated samples,
    the returned candidates with a thin line to where they really are (true or
    measured), the budget and the safety margin's line. The axes are focused on the
    candidates' region; the title names task, device and budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report, req = cands.report, cands.report.request
    if req["device"] is None:
        raise ValueError("the accuracy-vs-latency plot needs a device")
    acc, lat, label = _backdrop(ag, cands)
    ok = np.isfinite(acc) & np.isfinite(lat)
    acc, lat = np.asarray(acc)[ok], np.asarray(lat)[ok]
    budget = req["max_latency_ms"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    ax.scatter(lat, acc, s=3, c="0.75", label=label, rasterized=True)
    if report.sample_latency_ms is not None:
        ax.scatter(report.sample_latency_ms, report.sample_accuracy, s=8, c="tab:blue", alpha=0.6,
                   label=f"generated ({len(report.sample_archs)} distinct, predicted)")
    pred = np.array([(c.predicted_latency_ms, c.predicted_accuracy) for c in cands], dtype=float).reshape(-1, 2)
    ax.scatter(pred[:, 0], pred[:, 1], s=90, marker="*", c="tab:red", label=f"top {len(cands)} (predicted)", zorder=4)
    truths = [(c, p) for c in cands if (p := _true_point(c)) is not None]
    for c, (x, y) in truths:
        ax.plot([c.predicted_latency_ms, x], [c.predicted_accuracy, y], lw=0.7, c="k", alpha=0.6, zorder=3)
    if truths:
        ax.scatter([p[0] for _, p in truths], [p[1] for _, p in truths], s=60, marker="o", facecolors="none",
                   edgecolors="k", label="top candidates (true / measured)", zorder=4)
    spread = None
    if budget is not None:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:g} ms")
        margin = report.settings.get("margin", 0.0)
        stds = [c.latency_std_ms for c in cands if c.latency_std_ms is not None]
        if margin and stds:
            spread = float(np.median(stds))
            ax.axvline(budget - margin * spread, color="tab:orange", ls=":", lw=1.2,
                       label=f"budget - {margin:g} x median spread ({budget - margin * spread:.3g} ms): "
                             "safety margin")

    # focus: the candidates' latency window, and accuracies from the backdrop's
    # FOCUS_PERCENTILE there up to the best anything reaches in it
    xs = [*pred[:, 0], *(p[0] for _, p in truths)]
    if budget is not None:
        xs += [budget, budget * 1.25] + ([budget - margin * spread] if spread is not None else [])
    elif report.sample_latency_ms is not None:
        xs += list(np.percentile(report.sample_latency_ms, [5, 95]))
    x_low, x_high = _limits(np.array(xs))
    x_low = max(0.0, x_low)
    window = acc[(lat >= x_low) & (lat <= x_high)]
    ys = [*pred[:, 1], *(p[1] for _, p in truths)]
    if window.size:
        ys += [float(np.percentile(window, FOCUS_PERCENTILE)), float(window.max())]
    if report.sample_accuracy is not None and len(report.sample_accuracy):
        ys.append(float(np.percentile(report.sample_accuracy, FOCUS_PERCENTILE)))
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(*_limits(np.array(ys)))
    ax.set_xlabel(f"latency on {req['device']} (ms)")
    ax.set_ylabel(_label(req["task"]))
    budget_text = f"budget {budget:g} ms" if budget is not None else "no budget"
    ax.set_title(f"{req['task']} on {req['device']}, {budget_text}\n{req['generator']} generation in {req['space']}",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_generation(ag, cands, path: str | os.PathLike) -> Path:
    """Save :func:`generation_figure` as a PNG at ``path``; returns the path."""
    import matplotlib.pyplot as plt

    fig = generation_figure(ag, cands)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path)
    finally:
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
    gen = ag.bundle.generators.get(report.request["generator"])  # None: the random baseline
    config = {"request": report.request, "guidance": report.settings,
              "generator": {"kind": gen.kind, **gen.config.to_dict()} if gen is not None
              else {"kind": report.request["generator"]}}
    run = wandb.init(project="archgen", job_type="generate", dir=str(run_dir), mode=wandb_mode(), config=config,
                     name=f"generate-{report.request['task']}-{report.request['device']}-{report.request['generator']}",
                     reinit="create_new")
    try:
        columns = ["rank", "arch", "predicted_accuracy", "accuracy_std", "predicted_latency_ms", "latency_std_ms",
                   "true_accuracy", "true_latency_ms", "measured_latency_ms", "measured_by", "over_budget", "novel",
                   "num_classes"]
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
