"""KTUP's DBbook2014 tables with the learning-rate grids extended downward.

`kgrec reproduce ktup` gives every row a 3-point validation grid (the preset's lr x{1, 2, 4};
KTUP: lambda in {0.7, 0.5, 0.3} at lr x1). Most rows chose x1, the grid's edge, and KTUP's lr
was not searched. This script takes a finished warm-start study folder (``--study``, the
``--out`` of ``kgrec reproduce ktup``) and extends the grid of each row of ``--rows`` on
seed 0, selected on the row's validation metric like the study:

* an lr row: lr x0.5 and x0.25 added to the study's x{1, 2, 4}, and x0.125 when x0.25 is best;
* KTUP (soft/hard): lambda 0.3 (the study's choice) at lr x{0.5, 0.25, 0.125}, then lambda 0.7
  and 0.5 at the best of those (5 points, as an lr row).

Then seeds 0..N-1 of each choice (each tested once), started as the study started them (its
seed-s run configs, their ``init_from`` kept), except that KTUP starts from the TUP row of the
same induction as re-selected here (when that row is in ``--rows``). Same budget, validation
spacing and patience as the study (its run configs). Prints Tables 2, 4 and 3 in the study's
format; ``--write-results FILE`` writes blocks ``reproduce:ktup-lr-ext-table{2,4,3}:DATASET``.

    python benchmarks/ktup_lr_extension.py --study runs/reproduce --out runs/ktup-lr-ext
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import yaml

from kgrec.studies.ktup import ROWS, _run_once, _slug, table2, table3, table4
from kgrec.utils import machine_description

ROW = {r.label: r for r in ROWS}
DEFAULT_ROWS = "TUP (soft),KTUP (soft)"


def _lr_sets(cfg: Path, factor: float) -> list[str]:
    """``train.lr`` of ``cfg`` (a study run at lr x1) times ``factor``, as overrides."""
    lr = yaml.safe_load(cfg.read_text())["train"]["lr"]
    if isinstance(lr, dict):
        return [f"train.lr.{t}={v * factor:.6g}" for t, v in lr.items()]
    return [f"train.lr={lr * factor:.6g}"]


def _best_valid(m: dict, key: str) -> float:
    return max(h[f"valid_{key}"] for h in m["history"] if f"valid_{key}" in h)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", type=Path, required=True, help="a warm-start study's --out")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dataset", default="dbbook2014")
    ap.add_argument("--rows", default=DEFAULT_ROWS, help="comma-separated row labels "
                    f"(default {DEFAULT_ROWS!r}); a KTUP row after its TUP row")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--write-results", type=Path, default=None)
    a = ap.parse_args(argv)
    labels = [x.strip() for x in a.rows.split(",") if x.strip()]
    unknown = [x for x in labels if x not in ROW]
    if unknown:
        ap.exit(2, f"error: --rows: unknown row(s) {', '.join(unknown)} "
                   f"(rows: {', '.join(ROW)})\n")
    study, out = a.study / a.dataset, a.out / a.dataset
    results: dict[str, dict] = {}
    chosen_dirs: dict[str, Path] = {}  # label -> the selected grid point's folder

    def study_run(tag: str, seed: int) -> Path:
        cfg = study / tag / f"s{seed}" / "config.yaml"
        if not cfg.is_file():
            ap.exit(2, f"error: {cfg}: not a finished warm-start study run of {a.dataset}\n")
        return cfg

    for label in labels:
        row = ROW[label]
        warm = "-warm" if row.warm else ""
        tag = _slug(label) + warm
        if row.grid is None:  # an lr row
            base = study_run(f"{tag}-lrx1", 0)
            key = yaml.safe_load(base.read_text())["train"]["monitor"].split(".", 1)[1]
            grid, factors = [], [0.5, 0.25, 1.0, 2.0, 4.0]
            while factors:
                f = factors.pop(0)
                folder = (study if f >= 1 else out) / f"{tag}-lrx{f:g}"
                m = _run_once(base, [*_lr_sets(base, f), "seed=0"], folder / "s0", a.data_dir,
                              False)
                grid.append((f"lr x{f:g}", _best_valid(m, key), m["best_epoch"], f, folder))
                if f == 0.25 and grid[-1][1] > grid[-2][1]:
                    factors.insert(0, 0.125)  # x0.25 beats x0.5: one step further down
            grid.sort(key=lambda g: g[3])
            pick = max(grid, key=lambda g: g[1])
            def seed_dir(s: int, pick=pick, tag=tag) -> Path:  # never write into the study
                done = pick[4] / f"s{s}"
                return done if (done / "metrics.json").is_file() else (
                    out / f"{tag}-lrx{pick[3]:g}" / f"s{s}")

            runs = [_run_once(study_run(f"{tag}-lrx1", s), [*_lr_sets(base, pick[3]), f"seed={s}"],
                              seed_dir(s), a.data_dir, True) for s in range(a.seeds)]
            chosen_dirs[label] = seed_dir(0).parent
            results[label] = {"row": row, "grid": [g[:3] for g in grid], "chosen": pick[0],
                              "runs": runs, "warm": row.warm}
            continue
        # KTUP: lambda 0.3 at three lrs, then the other lambdas at the best lr
        tup = next(w for w in row.warm if w.startswith("TUP"))
        base = study_run(f"{tag}-joint_lambda0.3lrx1", 0)
        key = yaml.safe_load(base.read_text())["train"]["monitor"].split(".", 1)[1]

        def init(seed: int, tup=tup, tag=tag) -> list[str]:
            paths = yaml.safe_load(study_run(f"{tag}-joint_lambda0.3lrx1", seed).read_text())[
                "init_from"]
            if tup in chosen_dirs:  # start from the TUP row re-selected here
                old = f"/{_slug(tup)}-warm-lrx"
                paths = [str(chosen_dirs[tup] / f"s{seed}" / "model.pt") if old in p else p
                         for p in paths]
            return ["init_from=" + json.dumps(paths)]

        def ktup(lam: float, f: float, s: int, test: bool, tag=tag, base=base, init=init) -> dict:
            folder = out / f"{tag}-joint_lambda{lam:g}lrx{f:g}" / f"s{s}"
            return _run_once(base, [f"model_args.joint_lambda={lam}", *_lr_sets(base, f),
                                    f"seed={s}", *init(s)], folder, a.data_dir, test)

        kgrid = [(0.3, f, ktup(0.3, f, 0, False)) for f in (0.5, 0.25, 0.125)]
        best_f = max(kgrid, key=lambda g: _best_valid(g[2], key))[1]
        kgrid += [(lam, best_f, ktup(lam, best_f, 0, False)) for lam in (0.7, 0.5)]
        lam, f, _ = max(kgrid, key=lambda g: _best_valid(g[2], key))
        results[label] = {
            "row": row, "warm": row.warm,
            "grid": [(f"joint_lambda={x:g} lr x{y:g}", _best_valid(m, key), m["best_epoch"])
                     for x, y, m in kgrid],
            "chosen": f"joint_lambda={lam:g} lr x{f:g}",
            "runs": [ktup(lam, f, s, True) for s in range(a.seeds)]}

    cmd = "python benchmarks/ktup_lr_extension.py " + " ".join(
        shlex.quote(str(x)) for x in (argv if argv is not None else sys.argv[1:]))
    caption = (f"`{cmd}`; {machine_description('cpu')}; {time.strftime('%Y-%m-%d')}; the "
               "study's budget, validation spacing and patience (its run configs); seeds "
               f"0..{a.seeds - 1}; each row's grid on seed "
               "0, selected on its validation metric: lr rows x{0.5, 0.25} added to the study's "
               "x{1, 2, 4} (and x0.125 when x0.25 is best); KTUP lambda 0.3 at lr x{0.5, 0.25, "
               "0.125}, then lambda 0.7 and 0.5 at the best of those, starting from this "
               "table's TUP row of the same induction and the study's TransH, seed for seed; "
               "other rows start as in the study (its warm-start checkpoints); honest negative "
               "sampler.")
    tables = {"table2": table2(results, a.dataset, caption),
              "table4": table4(results, a.dataset, caption), "table3": table3(results, caption)}
    text = "\n\n".join(tables.values())
    print(text)
    if a.write_results:
        from kgrec.reproduce import update_section
        for name, block in tables.items():
            update_section(a.write_results, f"reproduce:ktup-lr-ext-{name}:{a.dataset}", block)
    return text


if __name__ == "__main__":
    main()
