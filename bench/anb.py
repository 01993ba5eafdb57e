"""Figures for designing where people deploy (issue 14): Accel-NASBench (``anb``) and
OFA-MobileNetV3 ImageNet accuracy. Prints JSON. What each part holds out is in its
``protocol`` field.

    python bench/anb.py --part accuracy    # anb ImageNet top-1: predictors vs trees vs MACs, N = 100 / 500 / all
    python bench/anb.py --part guide       # the graph network vs its feature student (what guidance reads)
    python bench/anb.py --part ofa         # OFA-MobileNetV3 ImageNet top-1 on held-out subnets
    python bench/anb.py --part devices     # anb devices held out in 3 folds, k = 10, vs the nearest known device
    python bench/anb.py --part generation  # anb generation judged by trees, vs random and evolution
    python bench/anb.py --part speed       # 1,000 conditioned samples, cold generate(n=5)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
# benchmarks neither read nor write the user's stored calibrations (archgen.calibrations)
os.environ["ARCHGEN_CALIBRATIONS"] = tempfile.mkdtemp(prefix="archgen-bench-calibrations-")

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from archgen.complexity import proxy_scores
from archgen.data import load_table
from archgen.spaces import get_space
from predictors.fit import ACCURACY_FIT, STUDENT_ARCHS, fit_predictor, for_table

#: the fixed test split: 10% of the distinct labelled architectures, seed 0
TEST_FRACTION, SPLIT_SEED = 0.1, 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def labelled_split(space: str, task: str, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """``(train rows, test rows)`` of the table's rows labelled on ``task``: a seeded
    split of the *distinct* architectures, so a repeated arch never sits on both sides."""
    table = load_table(space)
    rows = table.accuracy_rows(task)
    first = {}
    for r in rows:
        first.setdefault(table.archs[r], []).append(r)
    groups = list(first.values())
    perm = np.random.default_rng(seed).permutation(len(groups))
    n_test = int(round(test_fraction * len(groups)))
    test = np.array(sorted(r for g in perm[:n_test] for r in groups[g]))
    train = np.array(sorted(r for g in perm[n_test:] for r in groups[g]))
    return train, test


def tree_features(space, archs: list[str]) -> np.ndarray:
    """What the trees read: every decision of the layout (per-stage e/k/l/se in
    ``anb``; per-slot kernel/expand and the resolution in ``mbv3``) plus log2 MACs."""
    choices = np.array([space.encode_choices(a) for a in archs], dtype=np.float64)
    return np.concatenate([choices, proxy_scores(space, archs)[:, None]], axis=1)


def fit_trees(space, archs: list[str], y: np.ndarray, seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=seed).fit(tree_features(space, archs), y)


def _kendall(a, b) -> float:
    return round(float(kendalltau(a, b)[0]), 4)


def accuracy_at(space_name: str, task: str, sizes, encoders=("choices", "gin"), seeds=range(3)) -> dict:
    """Kendall on the fixed test split for predictors trained on N labels of the
    training side (N random, per seed), with trees and MACs in the same run."""
    space, table = get_space(space_name), load_table(space_name)
    train, test = labelled_split(space_name, task)
    y = table.accuracy(task)
    test_archs = [table.archs[i] for i in test]
    out = {"macs_alone": _kendall(proxy_scores(space, test_archs), y[test])}
    for n in sizes:
        row = {}
        for seed in seeds:
            pick = train if n is None else np.random.default_rng(seed).choice(train, n, replace=False)
            archs = [table.archs[i] for i in pick]
            trees = fit_trees(space, archs, y[pick], seed)
            row.setdefault("trees", []).append(_kendall(trees.predict(tree_features(space, test_archs)), y[test]))
            for enc in encoders:
                start = time.perf_counter()
                config = replace(for_table(ACCURACY_FIT, len(archs), "accuracy"), encoder=enc, tune_prior=False)
                if n is None and enc == "gin":  # as shipped: with the feature student guidance scores with
                    config = replace(config, student_archs=STUDENT_ARCHS)
                pred = fit_predictor(space, archs, {task: y[pick]}, kind="accuracy", unit="%",
                                     normalisation="standard", config=config, seed=seed, progress=False)
                tau = _kendall(pred.predict(test_archs, task).mean, y[test])
                row.setdefault(enc, []).append(tau)
                row.setdefault(f"{enc}_train_s", []).append(round(time.perf_counter() - start, 1))
                if pred.student is not None:
                    vectors = np.array([space.encode_choices(a) for a in test_archs])
                    row.setdefault("gin_student", []).append(
                        _kendall(pred.predict_choices(vectors, task).mean, y[test]))
            log(f"{space_name} N={n or len(train)} seed {seed}: { {k: v[-1] for k, v in row.items()} }")
            if n is None:
                break  # all labels: one fit per model (seed 0)
        out[f"N={n or len(train)}"] = {k: (round(float(np.mean(v)), 4) if not k.endswith("_s") else v)
                                       for k, v in row.items()}
    return out


def part_accuracy(args) -> dict:
    table = load_table("anb")
    train, test = labelled_split("anb", "imagenet")
    return {"protocol": f"anb ImageNet top-1: a fixed test split of {len(test)} rows (10% of the distinct "
                        f"labelled architectures, seed {SPLIT_SEED}); predictors and trees trained on N random rows "
                        f"of the other {len(train)} (seeds 0-2 for N=100/500; all labels once); Kendall tau on the "
                        "test split. Trees: scikit-learn HistGradientBoostingRegressor on every decision plus log2 "
                        "MACs. 'gin': the graph network (shipped); 'choices': an MLP over the decision vector "
                        "(the cheaper encoder); 'gin_student' (all labels): the shipped guide, a feature student of "
                        f"the graph network distilled on {STUDENT_ARCHS:,} random archs, read from decision vectors",
            "rows": len(table), **accuracy_at("anb", "imagenet", [100, 500, None])}


def part_guide(args) -> dict:
    """What steering with the feature student costs: the shipped accuracy predictor's
    graph network and its student on the --part accuracy split, all labels."""
    train, test = labelled_split("anb", "imagenet")
    return {"protocol": f"anb ImageNet top-1, the --part accuracy split ({len(test)} test rows); the graph network "
                        f"trained on all {len(train)} other labels with its feature student ({STUDENT_ARCHS:,} random "
                        "archs): Kendall of the network ('gin', final ranking) and of the student ('gin_student', "
                        "what guidance scores proposals with), trees in the same run",
            **accuracy_at("anb", "imagenet", [None], encoders=("gin",))}


def part_ofa(args) -> dict:
    train, test = labelled_split("mbv3", "imagenet")
    return {"protocol": f"OFA-MobileNetV3 ImageNet top-1 (supernet weights, resolution 224): fixed test split of "
                        f"{len(test)} subnets (10%, seed {SPLIT_SEED}); trained on N of the other {len(train)} "
                        "(seeds 0-2 for N=100/500); Kendall tau. 'choices' (the decision-vector encoder) is what the "
                        "shipped mbv3 bundle uses for accuracy; 'gin' the graph network; trees as in --part accuracy",
            **accuracy_at("mbv3", "imagenet", [100, 500, None])}


# -- unseen devices ---------------------------------------------------------------------
K = 10
DEVICE_SEEDS = range(5)
#: devices held out together: the two ZCU102 columns (latency and per-image throughput of
#: one board) share a fold, so neither is calibrated with its twin known
FOLDS = (("zcu102", "zcu102_per_image"), ("a100_per_image", "tpuv2_per_image"), ("3090_per_image", "tpuv3_per_image"))


def fold_of(device: str) -> tuple[str, ...]:
    """The devices held out with ``device`` (``--lodo``: itself alone)."""
    return (device,) if LODO else next(f for f in FOLDS if device in f)


#: set by ``--lodo``: leave one device out instead of the paired folds
LODO = False


def fold_predictor(device: str, cache: Path):
    """The anb latency predictor pretrained (shipped settings, feature student
    included) on every device outside ``device``'s fold, cached under ``cache`` by settings."""
    from predictors.bundle import pack_predictor, unpack_predictor
    from predictors.evaluation import fit_without, measured_rows
    from predictors.fit import LATENCY_FIT

    space, table = get_space("anb"), load_table("anb")
    fold = fold_of(device)
    others = [d for d in table.devices if d not in fold]
    config = for_table(LATENCY_FIT, len(measured_rows(table, others)), space=space)
    path = cache / f"anb-latency-{config.fingerprint()}-without-{'-'.join(fold)}.pt"
    if path.is_file():
        return unpack_predictor(space, torch.load(path, weights_only=True))
    log(f"pretraining {path.name}")
    pred = fit_without(space, table, list(fold), config)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(pack_predictor(pred), path)
    return pred


def nearest_device(table, device: str, rows: np.ndarray, pick: np.ndarray) -> tuple[str, np.ndarray]:
    """The baseline: the known column (outside ``device``'s fold) that best fits the k
    measured points (least-squares line, lowest residual), mapped onto ``device``:
    ``(name, predictions on rows)``."""
    y = table.latency(device)
    best = None
    for other in table.devices:
        if other in fold_of(device):
            continue
        x = table.latency(other)
        ok = pick[np.isfinite(x[pick])]
        if len(ok) < 3:
            continue
        a, b = np.polyfit(x[ok], y[ok], 1)
        resid = float(np.mean((a * x[ok] + b - y[ok]) ** 2))
        if best is None or resid < best[0]:
            best = (resid, other, a, b)
    _, other, a, b = best
    return other, a * table.latency(other)[rows] + b


def part_devices(args) -> dict:
    table = load_table("anb")
    per_device = {}
    for device in table.devices:
        pred = fold_predictor(device, Path(args.cache))
        rows = table.latency_rows(device)
        archs, y = [table.archs[i] for i in rows], table.latency(device)[rows]
        ours, nearest, names = [], [], []
        for seed in DEVICE_SEEDS:
            pick = np.random.default_rng(seed).choice(len(rows), K, replace=False)
            pred.calibrate("held_out", [archs[i] for i in pick], y[pick], replace=True)
            ours.append(spearmanr(pred.predict(archs, "held_out").mean, y)[0])
            name, guess = nearest_device(table, device, rows, rows[pick])
            names.append(name)
            nearest.append(spearmanr(guess, y, nan_policy="omit")[0])
        pred.forget("held_out")
        per_device[device] = {"ours_k10": round(float(np.mean(ours)), 4),
                              "nearest_known_device_k10": round(float(np.mean(nearest)), 4),
                              "nearest_chosen": sorted(set(names)), "archs": len(rows)}
        log(f"anb {device}: {per_device[device]}")
    held = ("one at a time (leave one device out; the other ZCU102 column stays known)" if LODO else
            f"in {len(FOLDS)} folds {[list(f) for f in FOLDS]} (the two ZCU102 columns together)")
    return {"protocol": f"the {len(table.devices)} anb columns (throughput columns as ms per image) held out {held}: "
                        "the latency predictor (shipped settings) pretrained without them, "
                        f"calibrated from k={K} random measured archs (seeds 0-4), Spearman over every arch measured "
                        "on it. Baseline: the known column that fits the same k points best (least-squares line), "
                        "its full measured column mapped onto the device",
            "mean": {"ours_k10": round(float(np.mean([r["ours_k10"] for r in per_device.values()])), 4),
                     "nearest_known_device_k10": round(float(np.mean(
                         [r["nearest_known_device_k10"] for r in per_device.values()])), 4)},
            "per_device": per_device}


# -- generation ---------------------------------------------------------------------------
PERCENTILES = (30, 60, 90)
#: the generator (diffusion, the default), its two baselines; add "autoregressive" for the other generator
SEARCHERS = ("diffusion", "random_search", "evolution")
TASK = "imagenet"


class Counted:
    """A predictor wrapper that counts the architectures it scores (the budget of
    predictor calls every searcher gets alike)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, archs, target, **kw):
        self.calls += len(archs)
        return self.inner.predict(archs, target, **kw)

    def predict_choices(self, choices, target):
        self.calls += len(choices)
        return self.inner.predict_choices(choices, target)


def out_of_fold(space, table, column: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Tree predictions of ``column`` for every measured row, each from trees fitted
    without its fold (so labelled architectures face the judge as unseen ones do)."""
    rows = np.flatnonzero(np.isfinite(column))
    out = np.full(len(column), np.nan)
    parts = np.array_split(np.random.default_rng(seed).permutation(rows), folds)
    feats = tree_features(space, list(table.archs))
    from sklearn.ensemble import HistGradientBoostingRegressor

    for f in range(folds):
        train = np.concatenate([p for g, p in enumerate(parts) if g != f])
        out[parts[f]] = HistGradientBoostingRegressor(random_state=seed).fit(feats[train], column[train]).predict(
            feats[parts[f]])
    return out


def pick_best(space, archs: list[str], accuracy, latency, device: str, budget: float, margin: float):
    """The searcher's answer: the most accurate predicted arch within budget with the margin (GNN scores)."""
    acc, lat = accuracy.predict(archs, TASK), latency.predict(archs, device)
    ok = np.flatnonzero(lat.upper(margin) <= budget)
    return archs[int(ok[np.argmax(acc.mean[ok])])] if len(ok) else None


def random_search(space, calls: int, reward, seed: int) -> list[str]:
    """Random sampling with the same filter: ``calls`` uniform architectures scored by
    the guidance reward; its 1,000 best go to the final filter like a generator's samples."""
    archs = space.sample(calls, seed=seed)
    r = reward(np.array([space.encode_choices(a) for a in archs]))
    return [archs[i] for i in np.argsort(-r)[:1000]]


def regularized_evolution(space, calls: int, reward, seed: int, population: int = 100, tournament: int = 25,
                          batch: int = 50) -> list[str]:
    """Regularized evolution (Real et al. 2019) on the guidance reward, ``batch``
    children a generation: each the mutation of its tournament's winner; the oldest die.
    Its 1,000 best distinct go to the final filter."""
    rng = np.random.default_rng(seed)
    pop = space.sample(population, seed=seed)
    fit = list(reward(np.array([space.encode_choices(a) for a in pop])))
    seen = dict(zip(pop, fit))
    used = population
    while used < calls:
        parents = []
        for _ in range(min(batch, calls - used)):
            idx = rng.choice(len(pop), tournament, replace=False)
            parents.append(pop[idx[int(np.argmax([fit[i] for i in idx]))]])
        children = [space.mutate(p, seed=int(rng.integers(2**31))) for p in parents]
        r = reward(np.array([space.encode_choices(c) for c in children]))
        used += len(children)
        pop, fit = pop[len(children):] + children, fit[len(children):] + list(r)
        seen.update(zip(children, r))
    best = sorted(seen, key=seen.get, reverse=True)
    return best[:1000]


def part_generation(args) -> dict:
    """Each held-out device at its 30/60/90th percentile budgets: the generator, random
    search and regularized evolution with the same predictors and predictor calls."""
    from archgen import ArchGen
    from archgen.bundle import Bundle
    from archgen.generation import GuidanceSettings, generate, make_reward

    space, table = get_space("anb"), load_table("anb")
    shipped = ArchGen.pretrained("anb")
    acc_col = table.accuracy(TASK)
    judge_acc = fit_trees(space, [table.archs[i] for i in table.accuracy_rows(TASK)], acc_col[table.accuracy_rows(TASK)])
    oof_acc = out_of_fold(space, table, acc_col)
    rows, summary = [], {}
    for device in table.devices:
        lat_col = table.latency(device)
        measured = table.latency_rows(device)
        judge_lat = fit_trees(space, [table.archs[i] for i in measured], lat_col[measured])
        oof_lat = out_of_fold(space, table, lat_col)
        latency = fold_predictor(device, Path(args.cache))
        pick = np.random.default_rng(0).choice(measured, K, replace=False)
        target = f"held_out_{device}"
        latency.calibrate(target, [table.archs[i] for i in pick], lat_col[pick], replace=True)
        bundle = Bundle("anb", latency, shipped.bundle.accuracy, shipped.bundle.generators, {})
        ag = ArchGen(bundle)
        settings = GuidanceSettings.for_space(space, scores_choices=ag.scores_choices)
        for pct in PERCENTILES:
            budget = float(np.nanpercentile(lat_col, pct))
            both = np.isfinite(oof_acc) & np.isfinite(oof_lat)
            labelled_best = float(np.max(oof_acc[both & (oof_lat <= budget)]))
            row = {"device": device, "percentile": pct, "budget_ms": round(budget, 4),
                   "best_labelled_by_judge": round(labelled_best, 3)}
            for name in SEARCHERS:
                acc_c, lat_c = Counted(bundle.accuracy), Counted(latency)
                if name in ("diffusion", "autoregressive"):
                    counted = Bundle("anb", lat_c, acc_c, bundle.generators, {})
                    try:
                        cands = generate(counted, task=TASK, device=target, max_latency_ms=budget, n=1,
                                         generator=name, seed=0, settings=settings, progress=False)
                        arch, novel = cands[0].arch, cands[0].arch not in table.row_of
                    except Exception as exc:  # BudgetError: no answer is a row, not a crash
                        arch, novel = None, None
                        log(f"{name} {device} p{pct}: {exc}")
                    calls = acc_c.calls
                    row[f"{name}_calls"] = calls
                else:
                    reward = make_reward(space, bundle.accuracy, TASK, latency, target, budget, settings)
                    budget_calls = row["diffusion_calls"]
                    search = random_search if name == "random_search" else regularized_evolution
                    pool = search(space, budget_calls, reward, seed=0)
                    arch = pick_best(space, pool, bundle.accuracy, latency, target, budget, settings.margin)
                    novel = None if arch is None else arch not in table.row_of
                if arch is None:
                    row[name] = None
                    continue
                feats = tree_features(space, [arch])
                acc_j, lat_j = float(judge_acc.predict(feats)[0]), float(judge_lat.predict(feats)[0])
                row[name] = {"arch": arch, "judge_accuracy": round(acc_j, 3), "judge_latency_ms": round(lat_j, 4),
                             "within_budget": lat_j <= budget, "beats_labelled": acc_j >= labelled_best,
                             "novel": novel}
            rows.append(row)
            log(json.dumps(row))
    for name in SEARCHERS:
        got = [r[name] for r in rows if r.get(name)]
        if not got:
            summary[name] = {"rows": len(rows), "answered": 0}
            continue
        summary[name] = {"rows": len(rows), "answered": len(got),
                         "within_budget": sum(g["within_budget"] for g in got),
                         "beats_best_labelled": sum(g["beats_labelled"] for g in got),
                         "mean_judge_accuracy": round(float(np.mean([g["judge_accuracy"] for g in got])), 3),
                         "novel": sum(bool(g["novel"]) for g in got)}
    wins = {b: sum(1 for r in rows if r.get("diffusion") and r.get(b)
                   and r["diffusion"]["judge_accuracy"] > r[b]["judge_accuracy"]) for b in ("random_search", "evolution")}
    return {"protocol": "anb, task imagenet. Per device: the latency predictor pretrained without the device's "
                        f"{'own column' if LODO else 'fold'} (--part devices), calibrated from k={K} random measured archs (seed 0); the shipped accuracy "
                        "predictor and generators. Budgets at the device's 30/60/90th latency percentile. Judge (not "
                        "the guide): HistGradientBoosting trees on every decision + log2 MACs, fitted on all ImageNet "
                        "labels and on the device's whole column; the table's labelled archs are judged out of fold "
                        "(5 folds). Random search and regularized evolution (population 100, tournament 25) get the "
                        "generator's number of scored architectures (accuracy-predictor calls of the diffusion "
                        "request), score them with the same guidance reward, and pass their 1,000 best to the same "
                        "final filter (graph-network predictors, margin) as the generator",
            "summary": summary, "diffusion_beats": wins, "rows": rows}


# -- speed --------------------------------------------------------------------------------------
def part_speed(args) -> dict:
    """Warm requests of 1,000 conditioned samples per space, and cold generate(n=5) in a fresh interpreter."""
    import subprocess

    from archgen import ArchGen

    out = {}
    for space, device, budget in (("anb", "tpuv3_per_image", 0.9), ("mbv3", "v100_1", 20.0)):
        ag = ArchGen.pretrained(space)
        ag.generate(TASK, device, budget, n=5, progress=False)  # warm: imports, first builds
        times = {}
        for gen in ("diffusion", "autoregressive"):
            start = time.perf_counter()
            cands = ag.generate(TASK, device, budget, n=5, generator=gen, seed=1, progress=False)
            times[gen] = {"seconds": round(time.perf_counter() - start, 2), "samples": cands.report.samples}
        code = (f"import time; t=time.perf_counter(); from archgen import ArchGen; "
                f"ag=ArchGen.pretrained('{space}'); ag.generate('{TASK}', '{device}', {budget}, n=5, progress=False); "
                "print(time.perf_counter()-t)")
        cold = sorted(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout.split()[-1]) for _ in range(3))
        out[space] = {"request": {"task": TASK, "device": device, "max_latency_ms": budget},
                      "warm_1000_samples": times, "cold_generate_n5_median_s": round(cold[1], 2)}
        log(f"speed {space}: {out[space]}")
    return {"protocol": f"torch threads {args.threads}; warm: a second request in the same process; cold: a fresh "
                        "interpreter importing archgen, loading the shipped bundle and generate(n=5) (median of 3)",
            **out}


PARTS = {"accuracy": part_accuracy, "guide": part_guide, "ofa": part_ofa, "devices": part_devices, "generation": part_generation,
         "speed": part_speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: two benches share 2 cores)")
    parser.add_argument("--cache", default="/tmp/archgen-bench", help="folder for held-out predictors (default /tmp/archgen-bench)")
    parser.add_argument("--lodo", action="store_true",
                        help="--part devices/generation: hold out one device at a time (default: the paired folds)")
    args = parser.parse_args()
    global LODO
    LODO = args.lodo
    torch.set_num_threads(args.threads)
    parts = list(PARTS) if args.part == "all" else [args.part]
    out = {}
    for part in parts:
        start = time.perf_counter()
        out[part] = PARTS[part](args)
        out[part]["seconds"] = round(time.perf_counter() - start, 1)
        log(json.dumps({part: out[part]}))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
