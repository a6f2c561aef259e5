"""KTUP paper (Cao et al., WWW 2019) Tables 2, 3 and 4 on its own data: ``kgrec reproduce ktup``.

Every row of the paper that kgrec has (:data:`ROWS`) is trained from its preset
``PRESET-DATASET`` under one protocol, so the rows differ only in the model:

* **Equal budget.** Every run stops once a task has seen ``budget`` training examples
  (``train.max_examples``: rec pairs for the ``rec`` task, KG triples for the ``kg`` task;
  the joint models alternate one rec batch and one KG batch, so they see about as many
  triples as pairs), validates every ``~budget/10`` examples (``eval_every`` epochs of
  the row's main task) and stops early after ``patience`` validations without a better
  validation score. The examples each run saw are shown in the tables.
* **Equal validation grid.** Seed 0 of every grid point is trained and selected on the
  preset's validation metric (``train.monitor``: Recall@10 for the recommenders, filtered
  KG Hits@10 for TransE/H/R); the test split is not read. The grid is the preset's
  learning rates times each factor of ``lr_factors``, except for KTUP, whose grid of the
  same size is the joint weight lambda of Eq. 21 in ``{0.7, 0.5, 0.3}`` (KTUP Section
  6.3's search) at the preset's learning rates times ``Row.grid_lr`` (1: the authors'
  ``ktup.sh`` lr 0.001, at which a warm start holds; at x2 it drifts down).
* **Seeds.** The selected setting is trained with seeds ``0..seeds-1`` (seed 0 resumed
  from its grid run) and each is test-evaluated once; tables give mean ± std.

Protocols (stated in the tables): top-K as KTUP's ``getRecPerformance`` (every item
ranked, the user's train and valid items skipped for the test, top 10, precision =
hits/10, recall = hits/|test items|, F1 per user, averaged over users with test items;
NDCG in the authors' ``ndcg_at_k`` form and the standard one); KG completion filtered by
every known triple, head and tail predictions pooled (Table 4) and, per relation category
(Table 3), apart. Categories come from the KG *training* triples by the TransH rule
(tails per head and heads per tail below or at/above 1.5). The paper's Table 3 is on
MovieLens-1m only, so Table 3 here has no paper column.

``warm_start=True`` (the default; ``--no-warm-start`` trains every row from scratch)
initialises the rows that have one (``Row.warm``) from the selected runs of other rows,
seed for seed (a seed-``s`` run, and the grid of seed 0, starts from the seed-``s``
checkpoints ``model.pt`` of the rows it names, which are added to the study when not asked
for): KTUP Section 6.3 gives the joint models "the
pretrained embeddings of the basic model (i.e., BPRMF and TransE)"; the authors' scripts
are more specific and are followed where they exist: ``ktup.sh`` loads TUP and TransH
checkpoints, ``cke.sh`` BPRMF and TransR, ``cofm.sh`` BPRMF and TransE. CFKG takes BPRMF and
TransE (Section 6.3); TUP takes BPRMF and TransH / TransR take TransE (our reading: each
from its basic model, which the chains above need). Tensors are matched by name and shape
(:meth:`kgrec.models.base.Model.load_pretrained`, the config's ``init_from``).

``sampler="all_splits"`` trains every recommender with the KTUP authors' negative sampler
(negatives avoid the user's valid and test items too: a test-set leak, see
:class:`kgrec.data.samplers.BPRSampler`); its tables are labelled as such and KG-only rows
are left out (they have no rec sampler).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from kgrec.config import load_config
from kgrec.errors import ConfigError
from kgrec.presets import PRESET_DIR
from kgrec.training.experiment import run
from kgrec.utils import machine_description


@dataclass(frozen=True)
class Row:
    """A row of the paper's tables: its label, preset stem and fixed overrides."""

    label: str
    preset: str
    overrides: tuple[str, ...] = ()
    rec: bool = True  # a row of Table 2
    kg: bool = False  # a row of Tables 3 and 4
    grid: tuple[tuple[str, ...], ...] | None = None  # None: the lr factors
    grid_lr: float = 2.0  # the lr factor of a ``grid`` row's points (KTUP: 1, ``ktup.sh``)
    warm: tuple[str, ...] = ()  # rows whose checkpoints start this one (``warm_start``)


_LAMBDAS = tuple((f"model_args.joint_lambda={v}",) for v in (0.7, 0.5, 0.3))

#: the paper's rows that kgrec has, in the paper's order (Table 2, then the KG-only rows)
ROWS: tuple[Row, ...] = (
    Row("FM", "fm"),
    Row("BPRMF", "bprmf"),
    Row("CFKG", "cfkg", kg=True, warm=("BPRMF", "TransE")),
    Row("CKE", "cke", kg=True, warm=("BPRMF", "TransR")),
    Row("CoFM (share)", "cofm", ("model_args.variant=share",), kg=True, warm=("BPRMF", "TransE")),
    Row("CoFM (reg)", "cofm", ("model_args.variant=reg",), kg=True, warm=("BPRMF", "TransE")),
    Row("TUP (hard)", "tup", ("model_args.induction=hard",), warm=("BPRMF",)),
    Row("TUP (soft)", "tup", ("model_args.induction=soft",), warm=("BPRMF",)),
    Row("KTUP (hard)", "ktup", ("model_args.induction=hard",), kg=True, grid=_LAMBDAS,
        grid_lr=1.0, warm=("TUP (hard)", "TransH")),
    Row("KTUP (soft)", "ktup", ("model_args.induction=soft",), kg=True, grid=_LAMBDAS,
        grid_lr=1.0, warm=("TUP (soft)", "TransH")),
    Row("TransE", "transe", rec=False, kg=True),
    Row("TransH", "transh", rec=False, kg=True, warm=("TransE",)),
    Row("TransR", "transr", rec=False, kg=True, warm=("TransE",)),
)

#: KTUP Table 2, DBbook2014 (@10, %): precision, recall, F1, hit ratio, NDCG (authors')
PAPER_TABLE2: dict[str, dict[str, tuple[float, ...]]] = {"dbbook2014": {
    "FM": (3.44, 21.55, 5.75, 30.15, 20.10),
    "BPRMF": (3.56, 22.46, 5.96, 31.26, 21.01),
    "CFKG": (3.17, 19.69, 5.30, 28.09, 19.87),
    "CKE": (3.92, 23.41, 6.51, 33.18, 27.78),
    "CoFM (share)": (3.41, 20.78, 5.67, 29.84, 20.92),
    "CoFM (reg)": (3.32, 20.54, 5.54, 28.96, 20.53),
    "TUP (hard)": (3.40, 21.11, 5.67, 29.56, 20.19),
    "TUP (soft)": (3.62, 22.81, 6.06, 31.42, 21.54),
    "KTUP (hard)": (4.04, 24.48, 6.71, 34.49, 27.38),
    "KTUP (soft)": (4.05, 24.51, 6.73, 34.61, 27.62),
}}
#: KTUP Table 4, DBbook2014: filtered Hits@10 (%) and mean rank
PAPER_TABLE4: dict[str, dict[str, tuple[float, float]]] = {"dbbook2014": {
    "TransE": (60.71, 531), "TransH": (60.06, 556), "TransR": (56.33, 563),
    "CFKG": (58.83, 547), "CKE": (54.66, 593), "CoFM (share)": (57.01, 529),
    "CoFM (reg)": (60.81, 521), "KTUP (hard)": (60.53, 501), "KTUP (soft)": (60.75, 499),
}}
TOPK_COLUMNS = (("precision", "P"), ("recall", "R"), ("f1", "F1"), ("hit", "Hit"),
                ("ndcg_authors", "NDCG (authors')"))
SAMPLERS = ("train", "all_splits")
#: the study's protocol: training examples per task of every run, validations per run
#: (every ``BUDGET / VALIDATIONS`` examples), patience in validations, the lr grid
BUDGET, VALIDATIONS, PATIENCE, LR_FACTORS = 1_500_000, 3, 2, (1.0, 2.0, 4.0)


def select_rows(names: str | None) -> tuple[Row, ...]:
    """The rows named in ``names`` (comma-separated labels, any case; ``None``: all)."""
    if names is None:
        return ROWS
    by = {r.label.lower(): r for r in ROWS}
    given = [n.strip() for n in names.split(",") if n.strip()]
    wanted = [n.lower() for n in given]
    unknown = [n for n in given if n.lower() not in by]
    if unknown or not wanted:
        raise ConfigError(f"--rows: unknown row {', '.join(map(repr, unknown)) or '(none given)'}"
                          f"; the rows: {', '.join(r.label for r in ROWS)}")
    return tuple(r for r in ROWS if r.label.lower() in wanted)


def with_warm_rows(rows: tuple[Row, ...] | list[Row]) -> tuple[Row, ...]:
    """``rows`` plus every row their warm starts need (transitively), each after the rows
    it starts from (the needed rows first, in :data:`ROWS` order otherwise)."""
    by = {r.label: r for r in ROWS}
    done: list[Row] = []

    def add(r: Row) -> None:
        if r in done:
            return
        for dep in r.warm:
            add(by[dep])
        done.append(r)

    for r in rows:
        add(r)
    return tuple(done)


def _slug(label: str) -> str:
    return label.lower().replace(" ", "").replace("(", "-").replace(")", "")


def lr_overrides(lr: float | dict[str, float], factor: float) -> list[str]:
    """``--set`` overrides of a config's ``train.lr`` (one rate or one per task) x ``factor``."""
    if isinstance(lr, dict):
        return [f"train.lr.{t}={v * factor:.6g}" for t, v in lr.items()]
    return [f"train.lr={lr * factor:.6g}"]


def best_valid(metrics: dict, key: str) -> float:
    """A run's best validation ``key`` over its history (lowest for a mean rank)."""
    hist = [h[f"valid_{key}"] for h in metrics["history"] if f"valid_{key}" in h]
    return (min if key.endswith("mean_rank") else max)(hist)


def _grid(row: Row, lr_factors: tuple[float, ...], preset: Path, base: list[str]):
    """``(name, overrides)`` of each grid point of ``row``."""
    lr = load_config(preset, base).train.lr
    if row.grid is not None:
        return [(" ".join(g).replace("model_args.", "") + f" lr x{row.grid_lr:g}",
                 [*g, *lr_overrides(lr, row.grid_lr)]) for g in row.grid]
    return [(f"lr x{f:g}", lr_overrides(lr, f)) for f in lr_factors]


def _protocol(row: Row, preset: Path, budget: int, sampler: str) -> list[str]:
    """The study's overrides of ``row``: the example caps, validation spacing, sampler."""
    cfg = load_config(preset, list(row.overrides))
    from kgrec.models import get_model_class

    tasks = get_model_class(cfg.model).tasks
    caps = ",".join(f"{t}: {budget}" for t in tasks)
    out = [f"train.max_examples={{{caps}}}", "train.epochs=100000"]
    if sampler != "train" and "rec" in tasks:
        out.append(f"train.sampler_options.rec.exclude={sampler}")
    return out


_SIZES: dict[tuple, dict[str, int]] = {}


def _epoch_size(row: Row, preset: Path, data_dir) -> int:
    """Training examples of one epoch of the row's main task (rec pairs or KG triples)."""
    from kgrec.models import get_model_class
    from kgrec.training.experiment import prepare_data

    cfg = load_config(preset, list(row.overrides))
    where = (str(data_dir), cfg.data.model_dump_json())
    if where not in _SIZES:
        dataset, split = prepare_data(cfg, data_dir)
        kg = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
        _SIZES[where] = {"rec": int((split.train[:, 2] == 1).sum()), "kg": len(kg)}
    return _SIZES[where][get_model_class(cfg.model).tasks[0]]


def _run_once(preset: Path, overrides: list[str], out: Path, data_dir, test: bool) -> dict:
    done = out / "metrics.json"
    if done.exists():
        m = json.loads(done.read_text())
        if not test or "topk" in m or "kg" in m:
            return m
    return run(load_config(preset, overrides), out, data_dir, progress=False, evaluate_test=test)


def _init_from(results: dict[str, dict], warm: tuple[str, ...], seed: int) -> list[str]:
    """The ``init_from`` override of a seed-``seed`` run warm-started from the rows ``warm``."""
    if not warm:
        return []
    paths = [str((results[d]["folders"][seed] / "model.pt").resolve()) for d in warm]
    return [f"init_from={json.dumps(paths)}"]


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def study_rows(rows: tuple[Row, ...] | list[Row], dataset: str, seeds: int, out: Path,
               data_dir=None, configs: Path = PRESET_DIR, budget: int = BUDGET,
               lr_factors: tuple[float, ...] = LR_FACTORS, validations: int = VALIDATIONS,
               patience: int = PATIENCE, sampler: str = "train",
               overrides: list[str] | None = None,
               seeds_of: dict[str, int] | None = None,
               warm_start: bool = True) -> dict[str, dict]:
    """Grid on seed 0, then seeds ``0..seeds-1`` of the selected point, for every row.

    ``seeds_of`` gives some rows (by label) fewer or more seeds than ``seeds``. With
    ``warm_start``, rows with ``Row.warm`` start from those rows' selected runs, seed for
    seed (the rows they need are added, with at least as many seeds).
    Rows without a preset ``PRESET-DATASET.yaml`` in ``configs`` are left out (every row
    has one in the shipped presets for dbbook2014). Returns ``{label: {"row", "grid":
    [(name, valid score, best epoch)], "chosen", "monitor", "runs": [metrics per seed]}}``.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    results: dict[str, dict] = {}
    n_seeds = {r.label: (seeds_of or {}).get(r.label, seeds) for r in ROWS}
    if warm_start:
        rows = with_warm_rows(rows)
        for r in reversed(rows):  # dependents come after their rows: walk back
            for dep in r.warm:
                n_seeds[dep] = max(n_seeds[dep], n_seeds[r.label])
    present = [r for r in rows if (configs / f"{r.preset}-{dataset}.yaml").is_file()]
    if not present:
        raise ConfigError(f"{configs}: no preset of the KTUP rows for {dataset} "
                          f"({', '.join(sorted({r.preset for r in rows}))}-{dataset}.yaml)")
    for row in present:
        if sampler != "train" and not row.rec:
            continue  # a KG-only model has no rec sampler
        preset = configs / f"{row.preset}-{dataset}.yaml"
        every = max(1, round(budget / validations / _epoch_size(row, preset, data_dir)))
        base = [*row.overrides, *_protocol(row, preset, budget, sampler),
                f"train.eval_every={every}", f"train.patience={patience}", "train.threads=1",
                *(overrides or [])]
        monitor = load_config(preset, base).train.monitor
        key = monitor.split(".", 1)[1]
        warm = row.warm if warm_start else ()
        missing = [d for d in warm if d not in results]
        if missing:
            raise ConfigError(f"{row.label}: warm start needs the row(s) {', '.join(missing)}, "
                              f"which have no preset for {dataset} in {configs} (--no-warm-start trains "
                              "every row from scratch)")

        tag = (_slug(row.label) + ("" if sampler == "train" else f"-{sampler}")
               + ("-warm" if warm else ""))
        grid = []
        for name, sets in _grid(row, lr_factors, preset, base):
            folder = out / dataset / f"{tag}-{name.replace(' ', '').replace('=', '')}"
            m = _run_once(preset, [*base, *sets, "seed=0", *_init_from(results, warm, 0)],
                          folder / "s0", data_dir, False)
            score = best_valid(m, key)
            grid.append((name, score, m["best_epoch"], sets, folder))
        pick = (min if key.endswith("mean_rank") else max)(grid, key=lambda g: g[1])
        folders = [pick[4] / f"s{s}" for s in range(n_seeds[row.label])]
        runs = [_run_once(preset, [*base, *pick[3], f"seed={s}", *_init_from(results, warm, s)],
                          f, data_dir, True) for s, f in enumerate(folders)]
        results[row.label] = {"row": row, "grid": [g[:3] for g in grid], "chosen": pick[0],
                              "monitor": monitor, "runs": runs, "eval_every": every,
                              "folders": folders, "warm": warm}
    return results


def _caption(cmd: str, seeds: int, budget: int, sampler: str, devices: list[str],
             warm_start: bool = False) -> str:
    reading = ("negatives avoid the user's training items only (honest)" if sampler == "train"
               else "**the authors' negative sampler** (negatives avoid the user's train, valid "
                    "and test items: a test-set leak; not a fair figure)")
    machine = "; ".join(machine_description(d) for d in dict.fromkeys(devices or ["cpu"]))
    return (f"`{cmd}`; {machine}; {time.strftime('%Y-%m-%d')}. Mean ± std over seeds "
            f"0..{seeds - 1} (column seeds: a row run with fewer); budget {budget:,} training "
            f"examples per task (rec pairs, KG triples) per run, about {VALIDATIONS} "
            f"validations per run (every ~budget/{VALIDATIONS} examples and at the cap), early "
            f"stopping after "
            f"{PATIENCE} without a better one; grid of 3 per row on seed 0, selected on "
            f"validation (the preset's lr x{{{', '.join(f'{f:g}' for f in LR_FACTORS)}}}; KTUP: "
            f"lambda in {{0.7, 0.5, 0.3}} at lr x1); {reading}."
            + (" Warm start (KTUP Section 6.3, the authors' scripts): a row 'X, from A + B' "
               "starts each seed (and seed 0's grid) from the selected seed's model.pt of rows "
               "A and B of this table (tensors matched by name and shape); its examples are "
               "those of its own run, not counting A's and B's." if warm_start else ""))


def table2(results: dict[str, dict], dataset: str, caption: str) -> str:
    paper = PAPER_TABLE2.get(dataset, {})
    head = " | ".join(name for _, name in TOPK_COLUMNS)
    lines = [f"Table 2 (item recommendation, test, @10, %; measured (paper)). {caption} "
             "Protocol: all items ranked, the user's train and valid items skipped; P, R, "
             "F1, Hit per user averaged over users with test items; NDCG (authors') is "
             "KTUP's ndcg_at_k (the paper's), NDCG (standard) the usual one.", "",
             f"| model | {head} | NDCG (standard) | selected on valid (grid: score) "
             "| examples seen (median) | seeds |",
             "|---|" + "---|" * (len(TOPK_COLUMNS) + 4)]
    for label, r in results.items():
        runs = [m for m in r["runs"] if "topk" in m]
        if not r["row"].rec or not runs:
            continue
        ref = paper.get(label)
        cells = []
        for j, (metric, _) in enumerate(TOPK_COLUMNS):
            cell = _mean_sd([m["topk"][f"{metric}@10"] for m in runs], 100)
            cells.append(cell + (f" ({ref[j]:.2f})" if ref else ""))
        cells.append(_mean_sd([m["topk"]["ndcg@10"] for m in runs], 100))
        lines.append(f"| {_shown(label, r)} | {' | '.join(cells)} | {_selected(r)} "
                     f"| {_examples(runs)} | {len(runs)} |")
    return "\n".join(lines)


def _shown(label: str, r: dict) -> str:
    """The row's label, with the rows it was warm-started from."""
    return f"{label}, from {' + '.join(r['warm'])}" if r.get("warm") else label


def _selected(r: dict) -> str:
    grid = ", ".join(f"{n}: {s:.4f}" for n, s, _ in r["grid"])
    return f"**{r['chosen']}** ({grid})"


def _examples(runs: list[dict]) -> str:
    ex: dict[str, list[int]] = {}
    for m in runs:
        for t, n in m.get("examples", {}).items():
            ex.setdefault(t, []).append(n)
    return ", ".join(f"{t} {statistics.median(v):,.0f}" for t, v in ex.items())


def table4(results: dict[str, dict], dataset: str, caption: str) -> str:
    paper = PAPER_TABLE4.get(dataset, {})
    lines = [f"Table 4 (KG completion, test, filtered; measured (paper)). {caption} "
             "Ranks of every entity as head and as tail, other known triples filtered, "
             "head and tail predictions pooled; the test triples are the preset's "
             "(eval.kg_test_triples: a fixed sample, the same for every model and seed).", "",
             "| model | Hits@10 (%) | mean rank | MRR | selected on valid (grid: score) "
             "| examples seen (median) | seeds |", "|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        runs = [m for m in r["runs"] if "kg" in m]
        if not r["row"].kg or not runs:
            continue
        ref = paper.get(label)
        f = [m["kg"]["filtered"] for m in runs]
        hits = _mean_sd([x["hits@10"] for x in f], 100) + (f" ({ref[0]:.2f})" if ref else "")
        mr = _mean_sd([x["mean_rank"] for x in f], 1, 0) + (f" ({ref[1]:.0f})" if ref else "")
        mrr = _mean_sd([x["mrr"] for x in f], 1, 4)
        lines.append(f"| {_shown(label, r)} | {hits} | {mr} | {mrr} | {_selected(r)} "
                     f"| {_examples(runs)} | {len(runs)} |")
    return "\n".join(lines)


def table3(results: dict[str, dict], caption: str) -> str:
    cats = ("1-1", "1-N", "N-1", "N-N")
    lines = [f"Table 3 (KG completion by relation category, test, filtered Hits@10, %). "
             f"{caption} Categories from the KG training triples (TransH rule: tails per head "
             "and heads per tail < 1.5 or >= 1.5); the paper's Table 3 is on MovieLens-1m only, "
             "so there is no paper column; '-' where the test sample has no triple of the "
             "category.", "",
             "| model | " + " | ".join(f"head {c}" for c in cats) + " | "
             + " | ".join(f"tail {c}" for c in cats) + " |",
             "|---|" + "---|" * 8]
    for label, r in results.items():
        runs = [m for m in r["runs"] if "kg" in m]
        if not r["row"].kg or not runs:
            continue
        cells = []
        for side in ("head", "tail"):
            for c in cats:
                vals = [m["kg"]["categories"][c][side]["hits@10"] for m in runs
                        if c in m["kg"].get("categories", {})]
                cells.append(_mean_sd(vals, 100))
        lines.append(f"| {_shown(label, r)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def reproduce_ktup(datasets: list[str], seeds: int, out: Path, results: Path | None = None,
                   data_dir=None, configs: Path = PRESET_DIR, overrides: list[str] | None = None,
                   key: str | None = None, budget: int = BUDGET, sampler: str = "train",
                   rows: tuple[Row, ...] | list[Row] = ROWS, cmd: str | None = None,
                   seeds_of: dict[str, int] | None = None, warm_start: bool = True) -> str:
    """Tables 2, 4 and 3 for each dataset (markdown); with ``results``, also written into
    that file in blocks ``KEY-table2:DATASET`` (and ``-table4``, ``-table3``), ``KEY``
    defaulting to ``reproduce:ktup`` (``reproduce:ktup-authors-sampler`` for
    ``sampler="all_splits"``, also chosen by the override
    ``train.sampler_options.rec.exclude=all_splits``; ``-cold`` appended without the warm
    start)."""
    from kgrec.reproduce import update_section

    if not datasets:
        raise ConfigError("--datasets names no dataset")
    leak = "train.sampler_options.rec.exclude=all_splits"
    if leak in (overrides or []):  # the authors' sampler: rec rows only, tables labelled
        overrides = [o for o in overrides if o != leak]
        sampler = "all_splits"
    key = key or ("reproduce:ktup" + ("" if sampler == "train" else "-authors-sampler")
                  + ("" if warm_start else "-cold"))
    chosen = "" if tuple(rows) == ROWS else f" --rows '{','.join(r.label for r in rows)}'"
    cmd = cmd or (f"kgrec reproduce ktup --seeds {seeds} --datasets {','.join(datasets)}"
                  + (f" --budget {budget}" if budget != BUDGET else "") + chosen
                  + ("" if warm_start else " --no-warm-start")
                  + "".join(f" --set {o}" for o in overrides or [])
                  + (f" --set {leak}" if sampler == "all_splits" else ""))
    parts = []
    for ds in datasets:
        res = study_rows(rows, ds, seeds, out, data_dir, configs, budget, sampler=sampler,
                         overrides=overrides, seeds_of=seeds_of, warm_start=warm_start)
        devices = [load_config(configs / f"{r['row'].preset}-{ds}.yaml",
                               overrides or []).train.device for r in res.values()]
        caption = _caption(cmd, seeds, budget, sampler, devices, warm_start)
        tables = {"table2": table2(res, ds, caption)}
        if sampler == "train" and any(r["row"].kg for r in res.values()):
            tables["table4"] = table4(res, ds, caption)
            tables["table3"] = table3(res, caption)
        for name, body in tables.items():
            parts.append(body)
            if results is not None:
                update_section(results, f"{key}-{name}:{ds}", body)
    return "\n\n".join(parts)
