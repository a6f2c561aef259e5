"""Top-K comparison of several models with the same tuning budget (KTUP and JNSKR issues).

    python benchmarks/compare_topk.py --dataset lastfm \
        --models ktup,tup,tup-hard,bprmf,cke,cfkg --kg-models ktup,transh --key topk

For every model: (a) a validation grid of the preset's learning rates times each factor of
``--lr-factors`` (every task's lr scaled; seed 0, the test split never read), the same grid
size, epoch cap and patience for all models, selected on the preset's monitored validation
metric; (b) seeds ``0..seeds-1`` of the selected setting, each test-evaluated once (the seed-0
run of the grid is resumed from its run folder and only then test-evaluated). A markdown
table of test mean ± std is printed and, with ``--write-results PATH`` (e.g. docs/results.md),
written into PATH under ``--key``:DATASET; with ``--kg-models``, filtered Hits@10 / mean rank
on the KG test triples too (block ``kg:DATASET``).

A model name is a preset stem (``<model>-<dataset>``, see ``--configs``) or one of the variants
in ``VARIANTS``. Finished runs are reused (run folders under ``--out``/DATASET/KEY), so an interrupted
comparison continues where it stopped. ``--jobs N`` runs the independent runs of each phase in N
processes (each single-threaded unless ``--set train.threads=...``); ``--set train.device=cuda``
trains and evaluates on a GPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

from kgrec.config import load_config
from kgrec.evaluation import evaluate_topk
from kgrec.presets import PRESET_DIR
from kgrec.reproduce import update_section
from kgrec.training.experiment import prepare_data, run
from kgrec.utils import machine_description

#: name -> (preset stem, extra overrides)
VARIANTS = {
    "tup-hard": ("tup", ["model_args.induction=hard"]),
    "tup-soft": ("tup", ["model_args.induction=soft"]),
    "ktup-hard": ("ktup", ["model_args.induction=hard"]),
    "ktup-soft": ("ktup", ["model_args.induction=soft"]),
    "ktup-warm": ("ktup", []),
}

#: warm-started variants (KTUP Section 6.3): name -> pretraining runs ``(preset stem, extra)``,
#: made per seed on that seed's training split and selected on validation (never tested),
#: whose ``model.pt`` files go to ``model_args.pretrained``
WARM = {"ktup-warm": [("bprmf", []), ("transh", ["model=transe"])]}


def _spec(name: str, dataset: str, configs: Path) -> tuple[Path, list[str]]:
    """Preset and overrides of a model name: ``LABEL=STEM`` (the table row ``LABEL`` trains
    the preset ``STEM-DATASET``, e.g. ``ncf=ncf-topk``), a variant or a preset stem."""
    if "=" in name:
        return configs / f"{name.split('=', 1)[1]}-{dataset}.yaml", []
    stem, extra = VARIANTS.get(name, (name, []))
    return configs / f"{stem}-{dataset}.yaml", list(extra)


def _label(name: str) -> str:
    """The row (and run-folder) name of ``--models`` entry ``name`` (``LABEL=STEM``: LABEL)."""
    return name.split("=", 1)[0]


def _lr_overrides(preset: Path, base: list[str], factor: float) -> list[str]:
    cfg = load_config(preset, base)
    lr = cfg.train.lr
    if isinstance(lr, dict):
        return [f"train.lr.{t}={v * factor:.6g}" for t, v in lr.items()]
    return [f"train.lr={lr * factor:.6g}"]


def _run(preset: Path, overrides: list[str], out: Path, data_dir, evaluate_test: bool) -> dict:
    done = out / "metrics.json"
    if done.exists():
        m = json.loads(done.read_text())
        if not evaluate_test or "topk" in m or "kg" in m or m.get("test"):
            return m
    cfg = load_config(preset, overrides)
    return run(cfg, out, data_dir, progress=False, evaluate_test=evaluate_test)


def _machine(results: dict[str, dict], cuda_machine: str) -> str:
    """The machines of the table's runs, for its caption."""
    here = machine_description("cuda" if torch.cuda.is_available() else "cpu")
    if any("cuda" in r.get("device", "cpu") for r in results.values()) and cuda_machine:
        cpu_rows = any("cpu" in r.get("device", "cpu") for r in results.values())
        return (f"device cuda: {cuda_machine}" + (f"; device cpu: {here}" if cpu_rows else ""))
    return here


def _fmt(values: list[float], scale: float = 1.0, digits: int = 4) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def _pool_map(calls: list[tuple], jobs: int) -> list[dict]:
    """``_run(*call)`` for every call, in ``jobs`` worker processes (in this one for 1)."""
    if jobs <= 1 or len(calls) <= 1:
        return [_run(*c) for c in calls]
    with ProcessPoolExecutor(min(jobs, len(calls)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_run, *zip(*calls, strict=True)))


def compare(models: list[str], dataset: str, factors: list[float], seeds: int, fixed: list[str],
            out: Path, data_dir, configs: Path, jobs: int = 1,
            model_seeds: dict[str, int] | None = None) -> dict[str, dict]:
    """Grid runs of every model (phase 1), then the seeds of each selected setting (phase 2);
    the runs of a phase are independent and go to ``jobs`` processes. ``models`` entries
    may be ``LABEL=STEM`` (results keyed by LABEL); ``model_seeds`` gives some models fewer
    (or more) seeds than ``seeds``."""
    entries = {_label(m): m for m in models}
    models = list(entries)
    n_seeds = {n: (model_seeds or {}).get(n, seeds) for n in models}
    specs = {}
    for name in models:
        preset, extra = _spec(entries[name], dataset, configs)
        base = [*extra, *fixed]
        specs[name] = (preset, extra, base, load_config(preset, base).train.monitor)

    def pre_dir(stem: str, extra: list[str], seed: int) -> Path:
        model = next((e.split("=", 1)[1] for e in extra if e.startswith("model=")), stem)
        return out / f"pretrain-{model}-s{seed}"

    pre_calls = {(stem, tuple(extra), seed): (configs / f"{stem}-{dataset}.yaml",
                                              [*extra, *fixed, f"seed={seed}"],
                                              pre_dir(stem, extra, seed), data_dir, False)
                 for name in models for stem, extra in WARM.get(name, [])
                 for seed in range(seeds)}
    _pool_map(list(pre_calls.values()), jobs)  # phase 0: pretraining of warm starts

    def overrides(name: str, f: float, seed: int) -> list[str]:
        preset, _, base, _ = specs[name]
        warm = [str(pre_dir(stem, extra, seed) / "model.pt") for stem, extra in WARM.get(name, [])]
        pre = [f"model_args.pretrained=[{','.join(warm)}]"] if warm else []
        return [*base, *pre, *_lr_overrides(preset, base, f), f"seed={seed}"]

    grid_keys = [(name, f) for name in models for f in factors]
    grid_runs = _pool_map([(specs[n][0], overrides(n, f, 0), out / f"{n}-lr{f:g}-s0", data_dir,
                            False) for n, f in grid_keys], jobs)
    grids: dict[str, list] = {n: [] for n in models}
    for (name, f), m in zip(grid_keys, grid_runs, strict=True):
        key = specs[name][3].split(".", 1)[1]
        score = max(h[f"valid_{key}"] for h in m["history"] if f"valid_{key}" in h)
        grids[name].append((score, f, m["best_epoch"]))
        print(f"[grid] {name} lr x{f:g}: valid {key} {score:.4f} "
              f"(best epoch {m['best_epoch']}, {m['train_seconds']:.0f}s)", flush=True)
    chosen = {n: max(g, key=lambda x: x[0])[1] for n, g in grids.items()}

    seed_keys = [(name, seed) for name in models for seed in range(n_seeds[name])]
    seed_runs = _pool_map([(specs[n][0], overrides(n, chosen[n], s),
                            out / f"{n}-lr{chosen[n]:g}-s{s}", data_dir, True)
                           for n, s in seed_keys], jobs)
    results: dict[str, dict] = {}
    for name in models:
        preset, extra, base, monitor = specs[name]
        runs = [m for (n, _), m in zip(seed_keys, seed_runs, strict=True) if n == name]
        for seed, m in enumerate(runs):
            shown = m.get("topk") or m.get("kg", {}).get("filtered")
            print(f"[test] {name} seed {seed}: {json.dumps(shown)}", flush=True)
        devices = [yaml.safe_load((out / f"{name}-lr{chosen[name]:g}-s{s}" / "config.yaml")
                                  .read_text())["train"].get("device", "cpu")
                   for s in range(n_seeds[name])]
        device = "+".join(dict.fromkeys(devices))  # e.g. "cuda+cpu" when seeds ran apart
        results[name] = {"preset": str(preset), "extra": extra, "factor": chosen[name],
                         "device": device,
                         "monitor": monitor, "grid": [(g[1], g[0], g[2]) for g in grids[name]],
                         "lr": _lr_overrides(preset, base, chosen[name]), "runs": runs}
    return results


def popularity(preset: Path, seeds: int, ks: list[int], data_dir,
               fixed: list[str] | None = None) -> dict[str, list[float]]:
    """Test metrics of ranking every item by its training popularity, on the same splits."""

    class Pop(torch.nn.Module):
        def __init__(self, counts: np.ndarray) -> None:
            super().__init__()
            self.counts = torch.as_tensor(counts, dtype=torch.float32)

        def score_all(self, users):
            return self.counts.expand(len(users), -1).clone()

    out: dict[str, list[float]] = {}
    for seed in range(seeds):
        cfg = load_config(preset, [*(fixed or []), f"seed={seed}"])
        dataset, split = prepare_data(cfg, data_dir)
        train = split.train if split.train.shape[1] < 3 else split.train[split.train[:, 2] == 1]
        model = Pop(np.bincount(train[:, 1], minlength=dataset.n_items)).eval()
        for k, v in evaluate_topk(model, split, "test", ks, cfg.eval.ndcg, cfg.eval.batch_users,
                                  dataset.n_users, dataset.n_items,
                                  ndcg_authors=cfg.eval.ndcg_authors).items():
            out.setdefault(k, []).append(v)
    return out


def _metric_cells(runs: list[dict], ks: list[int], metrics: tuple[str, ...]) -> list[str]:
    """``mean ± std`` over the runs of each test metric at each K (K-major), skipping runs
    that lack one (e.g. ``ndcg_authors`` of runs made without it)."""
    return [_fmt([m["topk"][f"{metric}@{k}"] for m in runs if f"{metric}@{k}" in m["topk"]])
            for k in ks for metric in metrics]


def topk_table(results: dict[str, dict], ks: list[int], cmd: str, budget: str,
               pop: dict[str, list[float]] | None = None, machine: str = "") -> str:
    head = " | ".join(f"Recall@{k} | NDCG@{k}" for k in ks)
    lines = [
        f"Test metrics (mean ± std over seeds {budget}); machine: {machine}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `{cmd}`", "",
        f"| model | {head} | selected (valid) | valid grid (lr factor: score) | train s (median; device) "
        "| best epoch (median) |",
        "|---|" + "---|" * (2 * len(ks)) + "---|---|---|---|",
    ]
    for name, r in results.items():
        runs = [m for m in r["runs"] if "topk" in m]
        if not runs:
            continue
        cells = _metric_cells(runs, ks, ("recall", "ndcg"))
        grid = ", ".join(f"x{f:g}: {s:.4f}" for f, s, _ in r["grid"])
        secs = statistics.median(m["train_seconds"] for m in runs)
        ep = statistics.median(m["best_epoch"] for m in runs)
        sel = " ".join(r["lr"] + r["extra"])
        lines.append(f"| {name} | {' | '.join(cells)} | {sel} | {grid} | {secs:.0f}; "
                     f"{r.get('device', 'cpu')} | {ep:g} |")
    if pop:
        cells = [_fmt(pop[f"{m}@{k}"]) for k in ks for m in ("recall", "ndcg")]
        lines.append(f"| popularity (reference) | {' | '.join(cells)} | - | - | 0 | - |")
    return "\n".join(lines)


def to_best(m: dict) -> tuple[dict[str, int], float]:
    """Training examples seen per task (the samplers' rows, cumulative) and training seconds
    (validation excluded) up to the end of the validation-best epoch of a run's metrics;
    the seconds are ``train_seconds * best_epoch / epochs`` (epochs of one run cost alike)."""
    row = m["history"][m["best_epoch"] - 1]
    examples = {k[len("examples_"):]: v for k, v in row.items() if k.startswith("examples_")}
    return examples, m["train_seconds"] * m["best_epoch"] / max(m["epochs"], 1)


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else f"{n:.0f}"


def full_topk_table(results: dict[str, dict], ks: list[int], cmd: str, budget: str,
                    pop: dict[str, list[float]] | None = None, machine: str = "") -> str:
    """The comparison table of JNSKR's columns (issues 15 and 16): Recall, NDCG and the
    authors' NDCG (``ndcg_authors@K``) at each K, test mean ± std over each model's seeds,
    then the seeds, the selected learning rate, the validation grid, and (medians over
    seeds) the training examples and the training seconds to the validation-best epoch."""
    head = " | ".join(f"Recall@{k} | NDCG@{k} | NDCG_a@{k}" for k in ks)
    lines = [
        f"Test metrics, mean ± std over each row's seeds ({budget}); NDCG = standard NDCG, "
        f"NDCG_a = the authors' (`ndcg_authors@K`); machine: {machine}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `{cmd}`", "",
        f"| model | {head} | seeds | selected (valid) | valid grid (lr factor: score) "
        "| examples to best (median) | train s to best (median) | best epoch (median) |",
        "|---|" + "---|" * (3 * len(ks)) + "---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        runs = [m for m in r["runs"] if "topk" in m]
        if not runs:
            continue
        cells = _metric_cells(runs, ks, ("recall", "ndcg", "ndcg_authors"))
        best = [to_best(m) for m in runs]
        tasks = dict.fromkeys(t for ex, _ in best for t in ex)
        examples = "; ".join(f"{t} {_count(statistics.median(ex.get(t, 0) for ex, _ in best))}"
                             for t in tasks)
        secs = statistics.median(s for _, s in best)
        grid = ", ".join(f"x{f:g}: {s:.4f}" for f, s, _ in r["grid"])
        ep = statistics.median(m["best_epoch"] for m in runs)
        sel = " ".join(r["lr"] + r["extra"])
        lines.append(f"| {name} | {' | '.join(cells)} | {len(runs)} | {sel} | {grid} | {examples} "
                     f"| {secs:.1f} | {ep:g} |")
    if pop:
        cells = [_fmt(pop.get(f"{m}@{k}", [])) for k in ks for m in ("recall", "ndcg", "ndcg_authors")]
        n = len(pop[f"recall@{ks[0]}"])
        lines.append(f"| popularity (reference) | {' | '.join(cells)} | {n} | - | - | - | 0 | - |")
    return "\n".join(lines)


def kg_table(results: dict[str, dict], cmd: str, budget: str, machine: str = "") -> str:
    lines = [
        f"KG completion on the held-out KG test triples (data.kg_split 7:1:2 by seed, so seed s of "
        f"every model ranks the same triples), filtered, mean ± std over seeds {budget}; "
        f"{machine}, {time.strftime('%Y-%m-%d')}. Command: `{cmd}`", "",
        "| model | filtered Hits@10 (%) | filtered mean rank | filtered MRR | raw Hits@10 (%) "
        "| selected | train s (median; device) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        runs = [m for m in r["runs"] if "kg" in m]
        if not runs:
            continue
        f = [m["kg"]["filtered"] for m in runs]
        raw = [m["kg"]["raw"] for m in runs]
        secs = statistics.median(m["train_seconds"] for m in runs)
        lines.append(
            f"| {name} | {_fmt([x['hits@10'] for x in f], 100, 2)} | "
            f"{_fmt([x['mean_rank'] for x in f], 1, 1)} | {_fmt([x['mrr'] for x in f])} | "
            f"{_fmt([x['hits@10'] for x in raw], 100, 2)} | {' '.join(r['lr'] + r['extra'])} "
            f"| {secs:.0f}; {r.get('device', 'cpu')} |")
    return "\n".join(lines)


def add_run_args(ap: argparse.ArgumentParser) -> None:
    """The options every comparison script shares: where runs go and where tables are written."""
    ap.add_argument("--out", type=Path, default=Path("runs/compare"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--configs", type=Path, default=PRESET_DIR, help="preset folder")
    ap.add_argument("--write-results", type=Path, default=None, metavar="PATH",
                    help="also write the table(s) into this markdown file (e.g. docs/results.md)")
    ap.add_argument("--cuda-machine", default="",
                    help="describes the machine of runs made with train.device=cuda elsewhere")
    ap.add_argument("--jobs", type=int, default=1, help="runs of a phase in parallel processes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", default="", help="comma-separated; top-K table")
    ap.add_argument("--kg-models", default="", help="comma-separated; KG-completion table")
    ap.add_argument("--key", default="topk", help="docs/results.md block: KEY:DATASET")
    ap.add_argument("--kg-key", default="kg", help="docs/results.md block of the KG table")
    ap.add_argument("--ks", default="10", help="K of the table, e.g. 10 or 20")
    ap.add_argument("--lr-factors", default="0.5,1,2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seeds-of", action="append", default=[], metavar="LABEL=N",
                    help="seeds 0..N-1 for this model instead of --seeds (a row that does not "
                         "fit the budget with every seed)")
    ap.add_argument("--set", action="append", default=[], dest="fixed",
                    help="key=value for every run (e.g. train.epochs=60)")
    add_run_args(ap)
    ap.add_argument("--full-table", action="store_true",
                    help="top-K table with the authors' NDCG (eval.ndcg_authors), the seeds, the "
                         "training examples and seconds to the validation-best epoch")
    args = ap.parse_args()
    factors = [float(x) for x in args.lr_factors.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    cmd = "python " + shlex.join(sys.argv)
    budget = (f"0..{args.seeds - 1}; grid: each preset's learning rates x {{{args.lr_factors}}}, "
              f"seed 0, selected on the preset's validation metric; fixed: "
              f"{' '.join(args.fixed) or 'preset epochs/patience'}")
    out = args.out / args.dataset / args.key
    entries = [m for m in args.models.split(",") if m]
    kg_entries = [m for m in args.kg_models.split(",") if m]
    model_seeds = {k: int(v) for k, v in (x.split("=", 1) for x in args.seeds_of)}
    if model_seeds:
        budget += "; fewer seeds: " + ", ".join(f"{k} {v}" for k, v in model_seeds.items())
    res = compare(list(dict.fromkeys(entries + kg_entries)), args.dataset, factors, args.seeds,
                  args.fixed, out, args.data_dir, args.configs, args.jobs, model_seeds)
    models, kg_models = [_label(m) for m in entries], [_label(m) for m in kg_entries]
    (out / f"{args.key}-summary.json").write_text(json.dumps(
        {n: {k: v for k, v in r.items() if k != "runs"} for n, r in res.items()}, indent=2))
    if models:
        pop = popularity(_spec(entries[0], args.dataset, args.configs)[0], args.seeds, ks,
                         args.data_dir, args.fixed if args.full_table else None)
        table = (full_topk_table if args.full_table else topk_table)(
            {m: res[m] for m in models}, ks, cmd, budget, pop,
            _machine({m: res[m] for m in models}, args.cuda_machine))
        print(table)
        if args.write_results is not None:
            update_section(args.write_results, f"{args.key}:{args.dataset}", table)
    if kg_models:
        table = kg_table({m: res[m] for m in kg_models}, cmd, budget,
                         _machine({m: res[m] for m in kg_models}, args.cuda_machine))
        print(table)
        if args.write_results is not None:
            update_section(args.write_results, f"{args.kg_key}:{args.dataset}", table)


if __name__ == "__main__":
    main()
