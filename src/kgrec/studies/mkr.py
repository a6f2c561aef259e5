"""MKR's experiments (Wang et al., WWW 2019, Sections 4.5-4.6) as studies.

``kgrec reproduce mkr --study NAME``, NAME one of:

* ``variants`` (Table 2): MKR, MKR-1L (L = 1 cross&compress layer; where the preset's L is
  already 1, as on Book-Crossing and MovieLens-1M, MKR-1L *is* MKR, as the paper notes for
  MovieLens-1M), MKR-DCN (Eq. 13) and MKR-stitch (Eq. 15 with scalars): presets
  ``mkr-D``, ``mkr-dcn-D``, ``mkr-stitch-D``; test AUC / ACC, mean ± std over seeds.
* ``topk`` (Figures 3-4): Precision@K and Recall@K, K in 1, 2, 5, 10, 20, 50, 100, under
  MKR's top-K protocol (:func:`mkr_topk`).
* ``sparsity`` (Table 3): the training part subsampled to r = 10%, ..., 100%
  (``data.train_ratio``) with validation and test fixed, the training length kept in
  examples (:func:`_sparsity_extra`); test AUC.
* ``kge`` (Table 4): RMSE of predicted tail vectors, KGE module alone against KGE + RS
  (:func:`train_kge_only`, :meth:`kgrec.models.mkr.MKR.kge_rmse`).
* ``kg-size`` (Figure 5a): a random share 0.1, ..., 1.0 of the KG triples (``data.kg_ratio``).
* ``t`` (Figure 5b): t = 1..10 RS steps per KGE step (``train.schedule [[rec, t], [kge, 1]]``).
* ``dim`` (Figure 5c): embedding dimension d in 2, 4, ..., 64 (``model_args.dim``).

Every other setting is the dataset's preset. The paper's values: Tables 2-4 as printed;
Figures 3-4 are plots whose values are not in the text copy of the paper
(``shared/papers``), so none is shown; Figure 5 is on Bing-News only, and only what its
text gives is shown (derived values marked ``~``).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from kgrec.data.dataset import Split
from kgrec.errors import ConfigError
from kgrec.evaluation.topk import rank_topk, topk_metrics
from kgrec.plots import Series, plot_bars, plot_curves
from kgrec.studies import Study, StudyContext, StudyResult

KS = (1, 2, 5, 10, 20, 50, 100)
RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
T_VALUES = tuple(range(1, 11))
DIMS = (2, 4, 8, 16, 32, 64)

#: Table 2 (AUC, ACC); MKR-1L has no value where the paper's MKR already has L = 1
PAPER_TABLE2 = {
    "movie": {"MKR": (0.917, 0.843), "MKR-DCN": (0.883, 0.802), "MKR-stitch": (0.905, 0.830)},
    "book": {"MKR": (0.734, 0.704), "MKR-DCN": (0.705, 0.676), "MKR-stitch": (0.721, 0.682)},
    "lastfm": {"MKR": (0.797, 0.752), "MKR-1L": (0.795, 0.749), "MKR-DCN": (0.778, 0.730),
               "MKR-stitch": (0.772, 0.725)},
}
#: Table 3, MKR's row (MovieLens-1M, test AUC by training ratio r)
PAPER_TABLE3 = dict(zip(RATIOS, (0.868, 0.874, 0.881, 0.882, 0.889, 0.897, 0.903, 0.908,
                                 0.913, 0.917), strict=True))
#: Table 4 (RMSE of the KGE module: KGE alone, KGE + RS)
PAPER_TABLE4 = {"movie": (0.319, 0.302), "book": (0.596, 0.558), "lastfm": (0.480, 0.471)}
#: Figure 5 (Bing-News, AUC / ACC), only what the text gives: the tuned point equals Table 2's
#: Bing-News MKR (0.689 / 0.645) at Table 1's t = 5 and d = 16 with the whole KG; Section
#: 4.6.1's "+13.6% AUC, +11.8% ACC from KG ratio 0.1 to 1.0" puts ratio 0.1 at 0.689 / 1.136
#: and 0.645 / 1.118 (derived, so approximate)
PAPER_FIG5 = {
    "kg-size": {0.1: (0.689 / 1.136, 0.645 / 1.118, True), 1.0: (0.689, 0.645, False)},
    "t": {5: (0.689, 0.645, False)},
    "dim": {16: (0.689, 0.645, False)},
}
NAMES = {"lastfm": "Last.FM", "book": "Book-Crossing", "movie": "MovieLens-1M"}


def _name(ds: str) -> str:
    return NAMES.get(ds, ds)


def _fmt(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else math.nan


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


# ---- MKR's top-K protocol ---------------------------------------------------------------

def mkr_topk(model: torch.nn.Module, split: Split, n_users: int, n_items: int,
             ks: tuple[int, ...] = KS, batch_users: int = 1024) -> dict[str, float]:
    """Precision@K and Recall@K as MKR's code computes them (``train.py``: ``topk_settings``,
    ``topk_eval``, ``get_user_record``), our reading of Section 4.3's "select K items with
    highest predicted click probability for each user in the test set":

    * candidates: every item except those in any of the user's *training* rows, positive
      or sampled negative (``get_user_record(train_data, True)`` keeps every row); the
      user's validation items stay candidates;
    * relevant: the user's test positives (``label == 1``);
    * users: those with a training row and a test positive. MKR's code samples 100 of them
      at random per evaluation; we evaluate all of them (the same expectation, less noise);
    * ``precision@K = hits / K``, ``recall@K = hits / |test positives|``, averaged over users.
    """
    train = np.asarray(split.train, dtype=np.int64)
    exclude = sp.csr_matrix((np.ones(len(train), dtype=np.int8), (train[:, 0], train[:, 1])),
                            shape=(n_users, n_items))
    exclude.sum_duplicates()
    exclude.data[:] = 1
    test = np.asarray(split.test, dtype=np.int64)
    pos = test[test[:, 2] == 1]
    rel = sp.csr_matrix((np.ones(len(pos), dtype=np.int8), (pos[:, 0], pos[:, 1])),
                        shape=(n_users, n_items))
    rel.sum_duplicates()
    rel.data[:] = 1
    rel = (rel - rel.multiply(exclude)).tocsr()
    rel.eliminate_zeros()
    has_train = np.diff(exclude.indptr) > 0
    users = np.flatnonzero(has_train & (np.diff(rel.indptr) > 0))
    k_max = max(ks)
    ranked = rank_topk(model, users, exclude, k_max, batch_users=batch_users)
    m = topk_metrics(ranked, rel[users], ks)
    out = {f"{name}@{k}": m[f"{name}@{k}"] for k in ks for name in ("precision", "recall")}
    out["users"] = float(len(users))
    return out


# ---- KGE alone --------------------------------------------------------------------------

def train_kge_only(ctx: StudyContext, preset: str, seed: int, n_examples: int) -> float:
    """Table 4's "KGE": MKR built as the preset says, only its KGE task trained (the RS
    module never steps), for ``n_examples`` KG triples (the KGE + RS run's count at its
    selected epoch, so both see the same KG training), with the preset's KGE optimiser,
    learning rate and batch size; returns :meth:`MKR.kge_rmse` over all KG triples.
    The result is cached in ``RUN/metrics.json``."""
    from kgrec.data.samplers import make_sampler
    from kgrec.training.experiment import (
        build_model,
        make_optimizer,
        prepare_data,
        set_threads,
        write_json,
    )

    cfg = ctx.config(preset, seed)
    folder = ctx.run_dir(preset, seed, suffix="-kge_only")
    done = folder / "metrics.json"
    cfg_dict = cfg.model_dump(mode="json")
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == cfg_dict and saved.get("kge_examples") == n_examples:
            return float(saved["kge_rmse"])
    set_threads(cfg.train.threads)
    dataset, split = prepare_data(cfg, ctx.data_dir)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    device = torch.device(cfg.train.device)
    model = build_model(cfg, dataset, split, device).to(device)
    if "kge" not in model.tasks:
        raise ConfigError(f"{preset}: model {cfg.model!r} has no kge task")
    tc = cfg.train
    opts = {**model.sampler_defaults("kge"), **tc.sampler_options.get("kge", {})}
    sampler = make_sampler(model.task_samplers["kge"], dataset, split,
                           tc.for_task(tc.batch_size, "kge"), **opts)
    opt = make_optimizer(tc.optimizer, model.parameters(), tc.for_task(tc.lr, "kge"),
                         tc.weight_decay)
    model.train()
    seen, epoch = 0, 0
    while seen < n_examples:
        for batch in sampler.epoch(seed * 1_000_003 + epoch):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            opt.zero_grad(set_to_none=True)
            model(batch, task="kge").backward()
            opt.step()
            seen += len(batch["heads"])
            if seen >= n_examples:
                break
        epoch += 1
    model.eval()
    rmse = model.kge_rmse(torch.from_numpy(dataset.triples).to(device))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(done, {"config": cfg_dict, "kge_examples": n_examples, "seen": seen,
                      "kge_rmse": rmse})
    return rmse


# ---- studies ----------------------------------------------------------------------------

VARIANTS = (("MKR", "mkr", ()), ("MKR-1L", "mkr", ("model_args.n_low_layers=1",)),
            ("MKR-DCN", "mkr-dcn", ()), ("MKR-stitch", "mkr-stitch", ()))


def study_variants(ctx: StudyContext) -> StudyResult:
    rows, groups = [], []
    ours_auc: list[float | None] = []
    ours_err: list[float | None] = []
    paper_auc: list[float | None] = []
    for ds in ctx.datasets:
        runs: dict[str, list[dict[str, Any]]] = {}
        for label, prefix, extra in VARIANTS:
            preset = f"{prefix}-{ds}"
            note = ""
            if label == "MKR-1L" and ctx.config(preset, 0).model_args.get("n_low_layers", 1) == 1:
                runs[label] = runs["MKR"]
                note = " (= MKR: the preset's L is 1)"
            else:
                runs[label] = [ctx.train(preset, s, extra)[0] for s in range(ctx.seeds)]
            auc = [m["test"]["auc"] for m in runs[label]]
            acc = [m["test"]["acc"] for m in runs[label]]
            p_auc, p_acc = PAPER_TABLE2.get(ds, {}).get(label, (None, None))
            epochs = statistics.median(m["best_epoch"] for m in runs[label])
            secs = statistics.median(m["train_seconds"] for m in runs[label])
            rows.append(f"| {label}{note} | {_name(ds)} | {p_auc or '-'} | {_fmt(auc)} | "
                        f"{p_acc or '-'} | {_fmt(acc)} | {epochs:g} | {secs:.1f} |")
            groups.append(f"{label}\n{_name(ds)}")
            ours_auc.append(_mean(auc))
            ours_err.append(_sd(auc))
            paper_auc.append(p_auc)
    table = "\n".join([
        "| variant | dataset | paper AUC | our AUC | paper ACC | our ACC | best epoch (median) "
        "| train s (median) |",
        "|---|---|---|---|---|---|---|---|", *rows])
    notes = ("Table 2's MKR variants, test AUC / ACC (mean ± std over the seeds), each run with "
             "its preset (`mkr-D`, `mkr-dcn-D`, `mkr-stitch-D`; MKR-1L is `mkr-D` with "
             "`model_args.n_low_layers=1`), the epoch selected on the preset's validation metric. "
             "Paper: Table 2 (MKR-1L has no value where the paper's MKR already uses L = 1).")
    ylabel = "test AUC"
    return StudyResult(
        "MKR variants (MKR Table 2)", notes, table,
        lambda path: plot_bars(path, "MKR variants: test AUC, ours vs Table 2", groups, {ylabel: [
            Series("ours", groups, ours_auc, ours_err),
            Series("paper (Table 2)", groups, paper_auc, paper=True)]}))


def study_topk(ctx: StudyContext) -> StudyResult:
    from kgrec.training.experiment import load_run, set_threads

    results: dict[str, list[dict[str, float]]] = {}
    for ds in ctx.datasets:
        results[ds] = []
        for seed in range(ctx.seeds):
            _, folder = ctx.train(f"mkr-{ds}", seed)
            model, dataset, split, cfg = load_run(folder, ctx.data_dir)
            set_threads(cfg.train.threads)
            results[ds].append(mkr_topk(model, split, dataset.n_users, dataset.n_items, KS,
                                        cfg.eval.batch_users))
    head = "| K | " + " | ".join(f"{_name(ds)} P@K | {_name(ds)} R@K" for ds in ctx.datasets) + " |"
    rows = [head, "|---|" + "---|---|" * len(ctx.datasets)]
    for k in KS:
        cells = []
        for ds in ctx.datasets:
            cells += [_fmt([r[f"precision@{k}"] for r in results[ds]]),
                      _fmt([r[f"recall@{k}"] for r in results[ds]])]
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    users = ", ".join(f"{_name(ds)} {int(results[ds][0]['users']):,}" for ds in ctx.datasets)
    notes = (
        "Figures 3-4: Precision@K and Recall@K of MKR (preset `mkr-D`, epoch selected on its "
        "validation metric) under MKR's top-K protocol as its code runs it: each user ranks every "
        "item not in any of their training rows (positives and sampled negatives alike; "
        "validation items stay candidates) and the test positives are relevant; users with a "
        "training row and a test positive are evaluated, all of them (MKR's code draws 100 at "
        f"random per evaluation): {users}. Paper: Figures 3-4 are plots whose values are not "
        "in the text copy of the paper, so no paper value is shown.")

    def plot(path: Path) -> Path:
        panels: dict[str, list[Series]] = {}
        for metric, label in (("precision", "Precision@K"), ("recall", "Recall@K")):
            panels[label] = [
                Series(f"ours, {_name(ds)}", list(KS),
                       [_mean([r[f"{metric}@{k}"] for r in results[ds]]) for k in KS],
                       [_sd([r[f"{metric}@{k}"] for r in results[ds]]) for k in KS])
                for ds in ctx.datasets]
        return plot_curves(path, "MKR top-K (Figures 3-4 protocol; paper values not in the text)",
                           "K", panels, logx=True, xticks=KS)

    return StudyResult("MKR top-K precision and recall (MKR Figures 3-4)", notes,
                       "\n".join(rows), plot)


def _sweep(ctx: StudyContext, values: tuple, extra_for) -> dict[str, dict[Any, list[dict]]]:
    """``{dataset: {value: [metrics per seed]}}`` of MKR's preset with ``extra_for(cfg, v)``."""
    out: dict[str, dict[Any, list[dict]]] = {}
    for ds in ctx.datasets:
        preset = f"mkr-{ds}"
        base = ctx.config(preset, 0)
        out[ds] = {v: [ctx.train(preset, s, extra_for(base, v))[0] for s in range(ctx.seeds)]
                   for v in values}
    return out


def _sweep_result(ctx: StudyContext, key: str, title: str, what: str, xlabel: str,
                  values: tuple, res: dict, notes: str, logx: bool = False) -> StudyResult:
    paper = PAPER_FIG5.get(key, {})
    head = ("| " + xlabel + " | " + " | ".join(f"{_name(ds)} AUC | {_name(ds)} ACC"
                                               for ds in ctx.datasets)
            + " | paper AUC (Bing-News) | paper ACC (Bing-News) |")
    rows = [head, "|---|" + "---|---|" * len(ctx.datasets) + "---|---|"]
    for v in values:
        cells = []
        for ds in ctx.datasets:
            cells += [_fmt([m["test"]["auc"] for m in res[ds][v]]),
                      _fmt([m["test"]["acc"] for m in res[ds][v]])]
        p = paper.get(v)
        cells += ([f"{'~' if p[2] else ''}{p[0]:.3f}", f"{'~' if p[2] else ''}{p[1]:.3f}"]
                  if p else ["-", "-"])
        rows.append(f"| {v:g} | " + " | ".join(cells) + " |")

    def plot(path: Path) -> Path:
        panels: dict[str, list[Series]] = {}
        for i, metric in enumerate(("auc", "acc")):
            series = [Series(f"ours, {_name(ds)}", list(values),
                             [_mean([m["test"][metric] for m in res[ds][v]]) for v in values],
                             [_sd([m["test"][metric] for m in res[ds][v]]) for v in values])
                      for ds in ctx.datasets]
            if paper:
                xs = sorted(paper)
                series.append(Series("paper (Bing-News, from the text)", xs,
                                     [paper[x][i] for x in xs], paper=True))
            panels[f"test {metric.upper()}"] = series
        return plot_curves(path, f"MKR: {what}", xlabel, panels, logx=logx,
                           xticks=values if logx else None, paper_axis="paper (Bing-News)",
                           min_span=0.04)

    return StudyResult(title, notes, "\n".join(rows), plot)


FIG5_NOTE = ("Paper: Figure 5 is on Bing-News only and its values are not in the text copy; "
             "shown are the points the text gives: Table 2's Bing-News MKR (0.689 / 0.645) at "
             "Table 1's setting (t = 5, d = 16, whole KG) and, for the KG ratio 0.1, that value "
             "less Section 4.6.1's gains (+13.6% AUC, +11.8% ACC), marked ~.")


def _sparsity_extra(cfg, r: float) -> tuple[str, ...]:
    """Training ratio ``r`` with the training length kept in examples: ``n = round(1/r)``
    times the preset's epochs, validated every ``n`` epochs (about one full training part's
    worth of examples), the preset's patience (it counts validations)."""
    if r == 1.0:
        return ()
    n = max(1, round(1 / r))
    if n == 1:
        return (f"data.train_ratio={r:g}",)
    tc = cfg.train
    return (f"data.train_ratio={r:g}", f"train.epochs={tc.epochs * n}",
            f"train.eval_every={tc.eval_every * n}")


def study_sparsity(ctx: StudyContext) -> StudyResult:
    ratios = ctx.sweep(RATIOS)
    res = _sweep(ctx, ratios, _sparsity_extra)
    head = ("| r | paper MKR AUC (MovieLens-1M, Table 3) | "
            + " | ".join(f"{_name(ds)} AUC | {_name(ds)} ACC" for ds in ctx.datasets) + " |")
    rows = [head, "|---|---|" + "---|---|" * len(ctx.datasets)]
    for r in ratios:
        cells = [f"{PAPER_TABLE3[r]:.3f}" if r in PAPER_TABLE3 else "-"]
        for ds in ctx.datasets:
            cells += [_fmt([m["test"]["auc"] for m in res[ds][r]]),
                      _fmt([m["test"]["acc"] for m in res[ds][r]])]
        rows.append(f"| {r:.0%} | " + " | ".join(cells) + " |")
    lo, hi = min(ratios), max(ratios)
    auc = {ds: {r: _mean([m["test"]["auc"] for m in res[ds][r]]) for r in ratios}
           for ds in ctx.datasets}
    drops = "; ".join(f"{_name(ds)} {auc[ds][lo] / auc[ds][hi] - 1:+.1%}" for ds in ctx.datasets)
    notes = ("Table 3: MKR (preset `mkr-D`) with a random share r of the training part "
             "(`data.train_ratio`, drawn with the run's seed), validation and test parts fixed; "
             "test AUC / ACC. Reading: the training length is kept in examples, not epochs: "
             "with n = round(1/r) the run may take n times the preset's epochs and validates every "
             "n epochs, so early stopping (the preset's patience, in validations) sees the same "
             "number of examples between validations as at r = 100%. (With the preset's epochs "
             "and patience unchanged, early stopping ends small-r runs on MKR's initial plateau, "
             "before the model has learnt anything.) Paper: Table 3's MKR row, MovieLens-1M "
             "only (AUC changes by -5.3% "
             f"from r = 100% to 10%). Ours, AUC change from r = {hi:.0%} to {lo:.0%}: {drops}.")

    def plot(path: Path) -> Path:
        series = [Series(f"ours, {_name(ds)}", [100 * r for r in ratios],
                         [_mean([m["test"]["auc"] for m in res[ds][r]]) for r in ratios],
                         [_sd([m["test"]["auc"] for m in res[ds][r]]) for r in ratios])
                  for ds in ctx.datasets]
        series.append(Series("paper (MovieLens-1M, Table 3)", [100 * r for r in RATIOS],
                             [PAPER_TABLE3[r] for r in RATIOS], paper=True))
        return plot_curves(path, "MKR in sparse scenarios (Table 3)", "training ratio r (%)",
                           {"test AUC": series}, paper_axis="paper (MovieLens-1M)")

    return StudyResult("MKR with less training data (MKR Table 3)", notes, "\n".join(rows), plot)


def study_kge(ctx: StudyContext) -> StudyResult:
    rows, groups = [], []
    series = {k: [] for k in ("ours KGE", "ours KGE + RS", "paper KGE", "paper KGE + RS")}
    errs = {"ours KGE": [], "ours KGE + RS": []}
    for ds in ctx.datasets:
        preset = f"mkr-{ds}"
        joint, alone = [], []
        for seed in range(ctx.seeds):
            m, _ = ctx.train(preset, seed)
            best = next((h for h in m["history"] if h["epoch"] == m["best_epoch"] - 1), None)
            n = int(best["examples_kge"]) if best and "examples_kge" in best else int(
                m["examples"]["kge"])
            joint.append(m["kge_rmse"])
            alone.append(train_kge_only(ctx, preset, seed, n))
        p = PAPER_TABLE4.get(ds, (None, None))
        change = _mean(joint) / _mean(alone) - 1
        p_change = f"{p[1] / p[0] - 1:+.1%}" if p[0] else "-"
        rows.append(f"| {_name(ds)} | {p[0] or '-'} | {p[1] or '-'} | {p_change} | "
                    f"{_fmt(alone)} | {_fmt(joint)} | {change:+.1%} |")
        groups.append(_name(ds))
        series["ours KGE"].append(_mean(alone))
        series["ours KGE + RS"].append(_mean(joint))
        errs["ours KGE"].append(_sd(alone))
        errs["ours KGE + RS"].append(_sd(joint))
        series["paper KGE"].append(p[0])
        series["paper KGE + RS"].append(p[1])
    table = "\n".join([
        "| dataset | paper KGE | paper KGE + RS | paper change | our KGE | our KGE + RS "
        "| our change |", "|---|---|---|---|---|---|---|", *rows])
    notes = (
        "Table 4: RMSE between predicted and true tail vectors of the KGE module. Reading: for "
        "each KG triple (all of the dataset's triples), the predicted tail is Eq. 7's t_hat = "
        "M^K([h_L; r_L]) and the true tail vector is the tail's embedding after the tail MLP "
        "(t_L, the vector Eq. 8 compares t_hat with); RMSE = sqrt(mean over the d coordinates "
        "of (t_L - t_hat)^2), averaged over triples (`MKR.kge_rmse`). \"KGE + RS\" is the preset's "
        "run at its selected epoch; \"KGE\" trains only the KGE task of the same model (same "
        "preset, seed, optimiser and batch size) for as many KG triples as the KGE + RS run "
        "had seen at its selected epoch. Each model is measured in its own learned space, as "
        "the paper's metric implies. Paper: Table 4.")
    bars = {"tail RMSE": [Series(k, groups, v, errs.get(k), paper=k.startswith("paper"))
                          for k, v in series.items()]}
    return StudyResult("MKR's KGE side: tail RMSE (MKR Table 4)", notes, table,
                       lambda path: plot_bars(path, "KGE alone vs KGE + RS (Table 4)", groups, bars))


def study_kg_size(ctx: StudyContext) -> StudyResult:
    ratios = ctx.sweep(RATIOS)
    res = _sweep(ctx, ratios, lambda cfg, r: () if r == 1.0 else (f"data.kg_ratio={r:g}",))
    notes = ("Figure 5a: MKR (preset `mkr-D`) with a random share of the KG triples "
             "(`data.kg_ratio`, drawn with the run's seed; items keep their aligned entity); test "
             "AUC / ACC. " + FIG5_NOTE)
    return _sweep_result(ctx, "kg-size", "MKR and the size of the KG (MKR Figure 5a)",
                         "KG ratio (Figure 5a)", "KG ratio", ratios, res, notes)


def _t_extra(cfg, t: int) -> tuple[str, ...]:
    tc = cfg.train
    if tc.kge_interval is not None:
        return () if tc.kge_interval == t else (f"train.kge_interval={t}",)
    if tc.schedule is not None and [tuple(s) for s in tc.schedule] == [("rec", t), ("kge", 1)]:
        return ()
    return (f"train.schedule=[[rec, {t}], [kge, 1]]",)


def study_t(ctx: StudyContext) -> StudyResult:
    values = ctx.sweep(T_VALUES, integer=True)
    res = _sweep(ctx, values, _t_extra)
    notes = ("Figure 5b: MKR (preset `mkr-D`) with t RS steps per KGE step (Algorithm 1; "
             "`train.schedule [[rec, t], [kge, 1]]`, or `train.kge_interval` where the preset "
             "uses the authors' epoch-level loop); an epoch is one pass over the RS data, so a "
             "larger t means fewer KGE steps; test AUC / ACC. " + FIG5_NOTE)
    return _sweep_result(ctx, "t", "MKR and the RS training frequency t (MKR Figure 5b)",
                         "t (Figure 5b)", "t", values, res, notes)


def study_dim(ctx: StudyContext) -> StudyResult:
    dims = ctx.sweep(DIMS, integer=True)
    res = _sweep(ctx, dims, lambda cfg, d: () if cfg.model_args.get("dim") == d
                 else (f"model_args.dim={d}",))
    notes = ("Figure 5c: MKR (preset `mkr-D`) with embedding dimension d of users, items, "
             "entities and relations (`model_args.dim`), every other setting the preset's; test "
             "AUC / ACC. " + FIG5_NOTE)
    return _sweep_result(ctx, "dim", "MKR and the embedding dimension d (MKR Figure 5c)",
                         "dimension d (Figure 5c)", "d", dims, res, notes, logx=True)


STUDIES: dict[str, Study] = {
    "variants": Study("variants", "MKR, MKR-1L, MKR-DCN, MKR-stitch (Table 2)", study_variants, 3),
    "topk": Study("topk", "Precision@K / Recall@K, MKR's protocol (Figures 3-4)", study_topk),
    "sparsity": Study("sparsity", "training ratio r = 10%..100% (Table 3)", study_sparsity,
                      sweeps=True),
    "kge": Study("kge", "tail RMSE, KGE alone vs KGE + RS (Table 4)", study_kge),
    "kg-size": Study("kg-size", "KG ratio 0.1..1.0 (Figure 5a)", study_kg_size, sweeps=True),
    "t": Study("t", "RS steps per KGE step t = 1..10 (Figure 5b)", study_t, sweeps=True),
    "dim": Study("dim", "embedding dimension d (Figure 5c)", study_dim, sweeps=True),
}
