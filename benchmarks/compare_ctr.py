"""CTR comparison (MKR Table 2 / HKRM Table 2 columns) with the same tuning budget (issue 15).

    python benchmarks/compare_ctr.py --dataset lastfm \
        --models mkr,ripplenet,widedeep,fm-ctr,cke-ctr,ncf,nfm,hkrm \
        --set train.max_examples.rec=250000 --set train.patience=2 --set train.threads=1

MKR's protocol: MKR's preprocessing (each positive with one sampled negative), the 6:2:2
split of the labelled rows by seed (every model's seed s sees the same split), test AUC and
accuracy of ``sigmoid(score) >= 0.5``. The grid, seeds and run folders are those of
``compare_topk.compare`` (imported, not copied): (a) each preset's learning rates times each
of ``--lr-factors`` on seed 0, the test split never read; (b) seeds ``0..seeds-1`` of the
setting with the best validation AUC, each test-evaluated once. Every run also gets
:data:`FIXED` (validation AUC as the monitor and the CTR protocol only), so the budget is the
same for all models: grid size, ``--set`` caps (``train.max_examples.rec``: training
examples of the main task, ``train.patience``, ``train.epochs``) and selection rule.

A model name is a preset stem (``<model>-<dataset>``): ``fm-ctr`` and ``cke-ctr`` are FM and
CKE trained with the log loss on the labelled pairs (``models/ctr_baselines.py``). The table
(test AUC / ACC mean ± std, the papers' figures beside them, the chosen setting, the
validation grid, training examples to the best epoch and training time) is printed and, with
``--write-results PATH``, written into PATH under ``--key``:DATASET (or ``--block``). Finished runs are reused
(``--out``/DATASET/KEY), so an interrupted comparison continues; ``--jobs N`` runs the
independent runs of a phase in N processes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_topk import _fmt, _machine, add_run_args, compare  # noqa: E402

from kgrec.reproduce import update_section  # noqa: E402

#: added to every run (before ``--set``): the same selection rule and protocol for all
FIXED = ["train.monitor=valid.auc", "eval.protocols=[ctr]"]

#: (dataset, model) -> [(source, AUC, ACC)]: the papers' test figures (MKR Table 2 and HKRM
#: Table 2; LibFM is the MKR paper's FM row). Neither paper has HKRM, NCF or NFM on Last.FM.
PAPER: dict[tuple[str, str], list[tuple[str, float, float]]] = {
    ("lastfm", "mkr"): [("MKR", 0.797, 0.752)],
    ("lastfm", "ripplenet"): [("MKR", 0.768, 0.691)],
    ("lastfm", "widedeep"): [("MKR", 0.756, 0.688)],
    ("lastfm", "fm-ctr"): [("MKR (LibFM)", 0.777, 0.709)],
    ("lastfm", "cke-ctr"): [("MKR", 0.744, 0.673)],
    ("book", "mkr"): [("MKR", 0.734, 0.704)],
    ("book", "ripplenet"): [("MKR", 0.729, 0.662), ("HKRM", 0.729, 0.662)],
    ("book", "widedeep"): [("MKR", 0.712, 0.624)],
    ("book", "fm-ctr"): [("MKR (LibFM)", 0.685, 0.640)],
    ("book", "cke-ctr"): [("MKR", 0.671, 0.633), ("HKRM", 0.676, 0.615)],
    ("book", "ncf"): [("HKRM", 0.725, 0.675)],
    ("book", "nfm"): [("HKRM", 0.659, 0.620)],
    ("book", "hkrm"): [("HKRM", 0.740, 0.683)],
}


def examples_to_best(m: dict) -> dict[str, int]:
    """Training examples seen per task (cumulative) up to the end of the selected (best)
    epoch of a run's metrics; empty when the history has no such row."""
    row = next((h for h in m.get("history", []) if h.get("epoch") == m.get("best_epoch", 0) - 1),
               {})
    return {k[len("examples_"):]: v for k, v in row.items() if k.startswith("examples_")}


def _examples(runs: list[dict]) -> str:
    """Median examples to the best epoch per task over ``runs``, e.g. ``rec 152k; kge 51k``."""
    seen = [examples_to_best(m) for m in runs]
    tasks = dict.fromkeys(t for ex in seen for t in ex)
    return "; ".join(f"{t} {_count(statistics.median(ex.get(t, 0) for ex in seen))}"
                     for t in tasks) or "-"


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else f"{n:.0f}"


def _paper(dataset: str, name: str, i: int) -> str:
    """The papers' AUC (``i=1``) or ACC (``i=2``) of a row, with their sources."""
    return "; ".join(f"{r[i]:.3f} ({r[0]})" for r in PAPER.get((dataset, name), [])) or "-"


def ctr_table(results: dict[str, dict], dataset: str, cmd: str, budget: str,
              machine: str = "") -> str:
    """Markdown table of the runs' test AUC / ACC (mean ± std) beside the papers' values."""
    lines = [
        f"Test AUC / ACC on {dataset} (mean ± std over each row's seeds {budget}); machine: {machine}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `{cmd}`", "",
        "| model | paper AUC | AUC | paper ACC | ACC | seeds | selected (valid AUC) "
        "| valid grid (lr factor: AUC) | examples to best epoch (median) "
        "| train s (median; device) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        runs = [m for m in r["runs"] if m.get("test")]
        if not runs:
            continue
        grid = ", ".join(f"x{f:g}: {s:.4f}" for f, s, _ in r["grid"])
        secs = statistics.median(m["train_seconds"] for m in runs)
        ex = _examples(runs)
        sel = " ".join(r["lr"] + r["extra"])
        lines.append(
            f"| {name} | {_paper(dataset, name, 1)} | {_fmt([m['test']['auc'] for m in runs])} "
            f"| {_paper(dataset, name, 2)} | {_fmt([m['test']['acc'] for m in runs])} "
            f"| {len(runs)} | {sel} "
            f"| {grid} | {ex} | {secs:.0f}; {r.get('device', 'cpu')} |")
    return "\n".join(lines)


def seed_counts(models: list[str], seeds: int, spec: str) -> dict[str, int]:
    """Seeds per model: ``seeds``, or N for the models named ``MODEL=N`` in ``spec``."""
    counts = dict.fromkeys(models, seeds)
    for item in filter(None, spec.split(",")):
        name, _, n = item.partition("=")
        if name not in counts or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--model-seeds {item!r}: expected MODEL=N with a model of "
                             f"--models and N >= 1")
        counts[name] = int(n)
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", required=True, help="comma-separated preset stems")
    ap.add_argument("--key", default="ctr", help="docs/results.md block: KEY:DATASET")
    ap.add_argument("--block", default="", metavar="NAME",
                    help="write the table to this block instead of KEY:DATASET (e.g. "
                         "ctr:book-extra: rows added beside a block whose run folders are gone)")
    ap.add_argument("--lr-factors", default="0.5,1,2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model-seeds", default="", metavar="MODEL=N,...",
                    help="fewer (or more) seeds for some models, e.g. mkr=1 (shown in the table)")
    ap.add_argument("--set", action="append", default=[], dest="fixed",
                    help="key=value for every run (e.g. train.max_examples.rec=250000)")
    add_run_args(ap)
    args = ap.parse_args(argv)
    factors = [float(x) for x in args.lr_factors.split(",")]
    models = list(dict.fromkeys(m for m in args.models.split(",") if m))
    cmd = "python " + shlex.join([sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    budget = (f"0..N-1 (N in the seeds column); grid: each preset's learning rates x {{{args.lr_factors}}}, "
              f"seed 0, selected on validation AUC; fixed for every model: "
              f"{' '.join(FIXED + args.fixed)}")
    out = args.out / args.dataset / args.key
    n_seeds = seed_counts(models, args.seeds, args.model_seeds)
    res: dict[str, dict] = {}
    for n in dict.fromkeys(n_seeds.values()):  # one comparison per seed count, same folders
        group = [m for m in models if n_seeds[m] == n]
        res.update(compare(group, args.dataset, factors, n, FIXED + args.fixed, out,
                           args.data_dir, args.configs, args.jobs))
    res = {m: res[m] for m in models}
    (out / f"{args.key}-summary.json").write_text(json.dumps(
        {n: {k: v for k, v in r.items() if k != "runs"} for n, r in res.items()}, indent=2))
    table = ctr_table(res, args.dataset, cmd, budget, _machine(res, args.cuda_machine))
    print(table)
    if args.write_results is not None:
        update_section(args.write_results, args.block or f"{args.key}:{args.dataset}", table)


if __name__ == "__main__":
    main()
