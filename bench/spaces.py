"""Figures for the large spaces (issue 5): FBNet, OFA-MobileNetV3, atomic graphs. Prints JSON.

    python bench/spaces.py --part build        # 50 random archs per space: build + ONNX export + forward
    python bench/spaces.py --part proxy        # the training-free accuracy proxy against NAS-Bench-201 accuracies
    python bench/spaces.py --part latency      # held-out devices, k = 5 / 10 / 20 (FBNet, MobileNetV3)
    python bench/spaces.py --part ceiling      # each device's own data: a lookup table cross-validated on it
    python bench/spaces.py --part cross        # NB201 + FBNet atomic graphs -> MobileNetV3 latency
    python bench/spaces.py --part generation   # budgets on a held-out device, judged by an all-data predictor

Held out: ``latency`` splits each table's devices into ``--folds`` folds and
pretrains once per fold without that fold's devices (with folds = number of
devices it is exactly leave-one-device-out; fewer folds hold out more at once,
which is stricter and cheaper). Each held-out device enters only through
calibration with k random measured architectures (seeds 0-4); Spearman is over
all 5,000 architectures the table has latencies of (MobileNetV3's ImageNet-only rows
have none). ``generation`` uses the fold-0 latency
predictor, so its device was never seen in pretraining (the accuracy proxy and
the generators of the shipped bundle never see any device).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

# bench/predictors.py would shadow the `predictors` package: drop bench/ from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
# benchmarks neither read nor write the user's stored calibrations (archgen.calibrations)
os.environ["ARCHGEN_CALIBRATIONS"] = tempfile.mkdtemp(prefix="archgen-bench-calibrations-")

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from archgen import ArchGen
from archgen.data import load_table
from archgen.errors import BudgetError, GenerationWarning
from archgen.hardware import run_onnx, to_onnx
from archgen.spaces import get_space
from predictors.evaluation import calibrated_spearman, fit_without, measured_rows
from predictors.fit import LATENCY_FIT, FitConfig, fit_predictor, for_table

SPACES = ("fbnet", "mbv3")
SEEDS = range(5)
#: generation: the held-out device of each space (in fold 0 of --part latency)
GENERATION_DEVICE = {"fbnet": "pixel3", "mbv3": "v100_1"}
PERCENTILES = (30, 60, 90)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def folds(devices: list[str], count: int, space: str) -> list[list[str]]:
    """Devices split round-robin (sorted order) into ``count`` folds; the generation
    device goes to fold 0."""
    rest = [d for d in devices if d != GENERATION_DEVICE[space]]
    out = [[] for _ in range(count)]
    for i, d in enumerate([GENERATION_DEVICE[space], *rest]):
        out[i % count].append(d)
    return out


# -- parts -----------------------------------------------------------------------------
def build(n: int = 50) -> dict:
    out = {"protocol": f"{n} random architectures per space (seed 0): build the torch module, export ONNX "
                       "(TorchScript exporter), one onnxruntime forward at batch 1 compared with torch"}
    for name in ("nb201", *SPACES):
        space = get_space(name)
        ok, times, errors = 0, [], []
        with tempfile.TemporaryDirectory() as tmp:
            for i, arch in enumerate(space.sample(n, seed=0)):
                start = time.perf_counter()
                module = space.to_module(arch).eval()
                shape = (1, *space.input_shape_of(arch))
                path = to_onnx(module, Path(tmp) / f"{i}.onnx", shape)
                x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
                got = run_onnx(path, x)
                times.append(time.perf_counter() - start)
                with torch.no_grad():
                    want = module(torch.from_numpy(x)).numpy()
                err = float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))
                ok += err < 1e-4
                if err >= 1e-4:
                    errors.append({"arch": arch, "relative_error": err})
        out[name] = {"succeeded": ok, "of": n, "seconds_per_arch": round(float(np.mean(times)), 3),
                     "seconds_per_arch_max": round(float(np.max(times)), 3), "mismatches": errors}
        log(f"build {name}: {out[name]}")
    return out


def proxy(n: int = 1000) -> dict:
    """Kendall tau of the proxy (log2 MACs of the built network) with the true
    NAS-Bench-201 accuracies, on n random cells."""
    from archgen.complexity import proxy_scores

    space, table = get_space("nb201"), load_table("nb201")
    rows = np.random.default_rng(0).choice(len(table), n, replace=False)
    archs = [table.archs[i] for i in rows]
    start = time.perf_counter()
    score = proxy_scores(space, archs)
    secs = (time.perf_counter() - start) / n
    out = {"protocol": f"{n} random NB201 cells (seed 0); proxy = log2 multiply-accumulates of the CIFAR network",
           "seconds_per_arch_nb201_built": round(secs, 4)}
    for task in table.tasks:
        out[f"kendall_{task}"] = round(float(kendalltau(score, table.accuracy(task)[rows])[0]), 4)
    for name in SPACES:
        sp = get_space(name)
        sample = sp.sample(200, seed=0)
        start = time.perf_counter()
        proxy_scores(sp, sample)
        out[f"seconds_per_arch_{name}_from_graph"] = round((time.perf_counter() - start) / len(sample), 5)
    return out


def _fold_predictor(space: str, fold: list[str], cache: Path):
    """The latency predictor pretrained without the devices of ``fold`` (cached)."""
    from predictors.bundle import pack_predictor, unpack_predictor

    table = load_table(space)
    # sized as fit_without sizes it (the rows measured on a pretraining device); in the file name,
    # so a changed config is never served stale
    config = for_table(LATENCY_FIT, len(measured_rows(table, [d for d in table.devices if d not in fold])))
    path = cache / f"{space}-latency-{config.fingerprint()}-without-{'-'.join(fold)}.pt"
    if path.is_file():
        return unpack_predictor(get_space(space), torch.load(path, weights_only=True))
    log(f"pretraining {path.name}")
    pred = fit_without(get_space(space), table, fold, config)
    torch.save(pack_predictor(pred), path)
    return pred


def latency(cache: Path, fold_count: int, ks=(5, 10, 20), spaces=SPACES, only_folds=None) -> dict:
    """Held-out latency per space; ``only_folds`` (indices) runs a part of the
    folds, e.g. one process per fold to fill the cache in parallel."""
    out = {}
    for name in spaces:
        table = load_table(name)
        archs = list(table.archs)  # calibrated_spearman leaves out the rows a device has no value for
        measured = len(measured_rows(table, table.devices))
        per_device, train_s = {}, []
        for f, fold in enumerate(folds(table.devices, fold_count, name)):
            if only_folds is not None and f not in only_folds:
                continue
            start = time.perf_counter()
            pred = _fold_predictor(name, fold, cache)
            train_s.append(time.perf_counter() - start)
            for d in fold:
                row = {"fold": f, **calibrated_spearman(pred, archs, table.latency(d), ks=ks, seeds=SEEDS)[0]}
                per_device[d] = row
                log(f"{name} {d}: {row}")
        out[name] = {
            "protocol": f"{len(table.devices)} devices in {fold_count} folds; pretrain without a fold, calibrate each "
                        "of its devices from k random archs (seeds 0-4), Spearman over all "
                        f"{measured:,} archs measured on it",
            "folds": folds(table.devices, fold_count, name),
            "summary": {f"k{k}": {"mean": round(float(np.mean([r[f'k{k}'] for r in per_device.values()])), 4),
                                  "min": round(float(np.min([r[f'k{k}'] for r in per_device.values()])), 4)}
                        for k in ks},
            "pretrain_s_per_fold": [round(s, 1) for s in train_s], "per_device": per_device,
        }
    return out


def ceiling(folds_cv: int = 5) -> dict:
    """What a device's own data allows: a lookup table (ridge regression on the
    one-hot choices of every decision, plus their products with the squared
    ordinal of the first decision: MobileNetV3's resolution) fitted on 4/5 of the
    device's own architectures, Spearman on the other fifth (5-fold). k=10
    calibration of a held-out device cannot be expected to beat it much: where
    it is low, the column is noisy or quantised (whole milliseconds)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    out = {}
    for name in SPACES:
        space, table = get_space(name), load_table(name)
        sizes = [len(o) for o in space.decisions.options]
        measured = measured_rows(table, table.devices)  # rows with a latency (MobileNetV3: not the ImageNet-only ones)
        choices = np.array([space.encode_choices(table.archs[i]) for i in measured])
        onehot = np.concatenate([np.eye(n)[choices[:, j]] for j, n in enumerate(sizes)], axis=1)
        first = (choices[:, :1] + 1.0) / sizes[0]
        x = np.concatenate([onehot, onehot * first**2], axis=1)
        cv = KFold(folds_cv, shuffle=True, random_state=0)
        per_device = {}
        for d in table.devices:
            y = table.latency(d)[measured]
            keep = np.isfinite(y)  # the device's own measured rows
            pred = cross_val_predict(RidgeCV(alphas=np.logspace(-3, 3, 13)), x[keep], y[keep], cv=cv)
            per_device[d] = round(float(spearmanr(pred, y[keep])[0]), 4)
        out[name] = {"protocol": f"ridge lookup table on one-hot choices, {folds_cv}-fold cross-validated over the "
                                 f"{len(measured):,} archs of each device's own column",
                     "mean_spearman": round(float(np.mean(list(per_device.values()))), 4), "per_device": per_device}
    return out


def cross_family(cache: Path, n_train: int = 1000, n_eval: int = 500, targets=("2080ti_1", "titan_rtx_1")) -> dict:
    """A latency predictor over atomic graphs pretrained on NB201 + FBNet only,
    scored on MobileNetV3 latencies of the GPUs all three tables have."""
    from archgen.spaces.atomic import AtomicSpace

    atomic = AtomicSpace()
    graphs = cache / "atomic-graphs.npz"
    if graphs.is_file():
        atomic.load_graphs(graphs)
    tables = {name: load_table(name) for name in ("nb201", "fbnet", "mbv3")}
    shared = sorted(set(tables["nb201"].devices) & set(tables["fbnet"].devices))
    train_archs, columns = [], {d: [] for d in shared}
    def on_all(t, devices):  # rows measured on every one of devices
        return np.flatnonzero(np.isfinite(t.latency_matrix(list(devices))).all(axis=1))

    for name in ("nb201", "fbnet"):
        t = tables[name]
        pool = on_all(t, shared)
        rows = pool[np.random.default_rng(0).choice(len(pool), n_train, replace=False)]
        train_archs += atomic.wrap(name, [t.archs[i] for i in rows])
        for d in shared:
            columns[d].append(t.latency(d)[rows])
    mt = tables["mbv3"]
    pool = on_all(mt, targets)  # its 5,000 latency rows, not the ImageNet-only ones
    eval_rows = pool[np.random.default_rng(1).choice(len(pool), n_eval, replace=False)]
    eval_archs = atomic.wrap("mbv3", [mt.archs[i] for i in eval_rows])
    start = time.perf_counter()
    for a in train_archs + eval_archs:
        atomic.graph_arrays(a)
    atomic.save_graphs(graphs)
    convert_s = time.perf_counter() - start
    config = FitConfig(encoder="dag", hidden=32, epochs=40, batch_size=128)
    start = time.perf_counter()
    values = {d: np.concatenate(columns[d]) for d in shared}  # real ms of both families on each device
    pred = fit_predictor(atomic, train_archs, values, kind="latency", unit="ms", normalisation="ratio",
                         config=config, progress=False)
    train_s = time.perf_counter() - start
    out = {"protocol": f"DAG encoder over atomic graphs of {n_train} random NB201 + {n_train} random FBNet archs, "
                       f"trained on the {len(shared)} devices both tables have; scored on {n_eval} random MobileNetV3 "
                       "archs (never seen) by Spearman; zero-shot = the device's pretrained embedding, k=10 = "
                       "calibrated from 10 random MobileNetV3 measurements of it (seeds 0-4)",
           "devices": shared, "graph_build_s": round(convert_s, 1), "train_s": round(train_s, 1)}
    for d in targets:
        y = mt.latency(d)[eval_rows]
        zero = spearmanr(pred.predict(eval_archs, d).mean, y)[0]
        rhos = []
        for seed in SEEDS:
            idx = np.random.default_rng(seed).choice(n_eval, 10, replace=False)
            rest = np.setdiff1d(np.arange(n_eval), idx)
            pred.calibrate("mbv3_device", [eval_archs[i] for i in idx], y[idx], replace=True)
            rhos.append(spearmanr(pred.predict([eval_archs[i] for i in rest], "mbv3_device").mean, y[rest])[0])
        out[d] = {"zero_shot_spearman": round(float(zero), 4), "k10_spearman": round(float(np.mean(rhos)), 4)}
        log(f"cross-family {d}: {out[d]}")
    return out


def generation(cache: Path, fold_count: int, local_k: int = 10) -> dict:
    """Budgets at the held-out device's 30/60/90th latency percentile; candidates
    judged by the shipped bundle's predictor, which was trained on all of that
    device's data, and, after calibrating this machine as "local", by measuring
    them with onnxruntime here."""
    from archgen.complexity import PROXY_TASK
    from archgen.measurements import measure_archs

    out = {}
    for name in SPACES:
        table = load_table(name)
        device = GENERATION_DEVICE[name]
        fold = folds(table.devices, fold_count, name)[0]
        judge = ArchGen.pretrained(name)  # trained on every device of the table, this one included
        # the accuracy proxy and the generators never see a device: only latency is held out
        ag = ArchGen(replace(judge.bundle, latency=_fold_predictor(name, fold, cache)))
        measured = table.latency_rows(device)  # rows with a latency on the device
        picked = measured[np.random.default_rng(10_000).choice(len(measured), 10, replace=False)]  # table archs
        ag.calibrate_device("held_out", [table.archs[i] for i in picked], table.latency(device)[picked])
        rows = []
        for g in ("diffusion", "autoregressive"):
            for pct in PERCENTILES:
                budget = float(np.percentile(table.latency(device)[measured], pct))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", GenerationWarning)
                    try:
                        cands = ag.generate(PROXY_TASK, "held_out", budget, n=5, generator=g, seed=0)
                    except BudgetError as exc:
                        rows.append({"generator": g, "percentile": pct, "error": str(exc)})
                        continue
                judged = judge.predict_latency([c.arch for c in cands], device).mean
                rows.append({"generator": g, "percentile": pct, "budget_ms": round(budget, 3),
                             "within_budget_by_all_data_predictor": float(np.mean(judged <= budget)),
                             "predicted_ms": [round(c.predicted_latency_ms, 3) for c in cands],
                             "all_data_predictor_ms": [round(float(x), 3) for x in judged]})
                log(f"{name} {g} {pct}: {rows[-1]}")
        # this machine: calibrate "local" from k measured archs, budget = median of 30 measured random archs
        local = ArchGen.pretrained(name)
        local.calibrate_local(local_k, progress=False)
        sample = measure_archs(local.space, local.space.sample(30, seed=7), progress=False)
        budget = float(np.median([m.latency_ms for m in sample]))
        local_rows = {}
        for g in ("diffusion", "autoregressive"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", GenerationWarning)
                cands = local.generate(PROXY_TASK, "local", budget, n=5, generator=g, seed=0)
            real = [m.latency_ms for m in measure_archs(local.space, [c.arch for c in cands], progress=False)]
            local_rows[g] = {"within_budget_measured": float(np.mean([r <= budget for r in real])),
                             "measured_ms": [round(r, 3) for r in real],
                             "predicted_ms": [round(c.predicted_latency_ms, 3) for c in cands]}
            log(f"{name} local {g}: {local_rows[g]}")
        answered = [r for r in rows if "error" not in r]
        out[name] = {
            "held_out_device": device, "task": f"{PROXY_TASK} (training-free accuracy proxy)",
            "within_budget_by_all_data_predictor": round(float(np.mean(
                [r["within_budget_by_all_data_predictor"] for r in answered])), 3) if answered else None,
            "rows": rows,
            "local": {"budget_ms": round(budget, 3), "k": local_k, **local_rows},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["build", "proxy", "latency", "ceiling", "cross", "generation", "all"], default="all")
    parser.add_argument("--folds", type=int, default=3, help="device folds of --part latency (default 3)")
    parser.add_argument("--cache", default="/tmp/archgen-bench", help="folder for held-out bundles and atomic graphs")
    parser.add_argument("--space", choices=SPACES, action="append", help="--part latency: only this space (repeatable)")
    parser.add_argument("--fold", type=int, action="append", help="--part latency: only this fold index (repeatable)")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    result = {}
    if args.part in ("build", "all"):
        result["build"] = build()
    if args.part in ("proxy", "all"):
        result["proxy"] = proxy()
    if args.part in ("latency", "all"):
        result["latency"] = latency(cache, args.folds, spaces=args.space or SPACES, only_folds=args.fold)
    if args.part in ("ceiling", "all"):
        result["ceiling"] = ceiling()
    if args.part in ("cross", "all"):
        result["cross_family"] = cross_family(cache)
    if args.part in ("generation", "all"):
        result["generation"] = generation(cache, args.folds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
