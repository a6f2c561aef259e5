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

from kgrec.studies.ktup import ROWS, Row, _run_once, _slug, best_valid, lr_overrides, table2, table3, table4
from kgrec.utils import machine_description

ROW = {r.label: r for r in ROWS}
DEFAULT_ROWS = "TUP (soft),KTUP (soft)"


class Extension:
    """One run of the script: the study's folder, this run's folder and the rows done."""

    def __init__(self, study: Path, out: Path, dataset: str, seeds: int, data_dir) -> None:
        self.study, self.out = study / dataset, out / dataset
        self.dataset, self.seeds, self.data_dir = dataset, seeds, data_dir
        self.chosen: dict[str, Path] = {}  # label -> the selected grid point's folder

    def study_run(self, tag: str, seed: int) -> Path:
        """The config of the study's run ``tag``/s``seed`` (``SystemExit(2)`` if missing)."""
        cfg = self.study / tag / f"s{seed}" / "config.yaml"
        if not cfg.is_file():
            raise SystemExit(f"error: {cfg}: not a finished warm-start study run of "
                             f"{self.dataset}")
        return cfg

    @staticmethod
    def _read(cfg: Path) -> tuple[float | dict, str]:
        """``(train.lr, monitored key)`` of a run config."""
        train = yaml.safe_load(cfg.read_text())["train"]
        return train["lr"], train["monitor"].split(".", 1)[1]

    def lr_row(self, row: Row) -> dict:
        """x0.5 and x0.25 added to the study's x{1, 2, 4} (x0.125 when x0.25 is best)."""
        tag = _slug(row.label) + ("-warm" if row.warm else "")
        base = self.study_run(f"{tag}-lrx1", 0)
        lr, key = self._read(base)
        grid, factors = [], [0.5, 0.25, 1.0, 2.0, 4.0]
        while factors:
            f = factors.pop(0)
            folder = (self.study if f >= 1 else self.out) / f"{tag}-lrx{f:g}"
            m = _run_once(base, [*lr_overrides(lr, f), "seed=0"], folder / "s0", self.data_dir,
                          False)
            grid.append((f"lr x{f:g}", best_valid(m, key), m["best_epoch"], f, folder))
            if f == 0.25 and grid[-1][1] > grid[-2][1]:
                factors.insert(0, 0.125)  # x0.25 beats x0.5: one step further down
        grid.sort(key=lambda g: g[3])
        name, _, _, f, folder = max(grid, key=lambda g: g[1])
        if not (folder / "s1" / "metrics.json").is_file():  # never write into the study
            folder = self.out / f"{tag}-lrx{f:g}"
        runs = [_run_once(self.study_run(f"{tag}-lrx1", s), [*lr_overrides(lr, f), f"seed={s}"],
                          folder / f"s{s}", self.data_dir, True) for s in range(self.seeds)]
        self.chosen[row.label] = folder
        return {"row": row, "grid": [g[:3] for g in grid], "chosen": name, "runs": runs,
                "warm": row.warm}

    def ktup_row(self, row: Row) -> dict:
        """Lambda 0.3 at lr x{0.5, 0.25, 0.125}, then lambda 0.7 and 0.5 at the best lr,
        starting from the TUP row re-selected here (when it was)."""
        tag = _slug(row.label) + "-warm"
        tup = next(w for w in row.warm if w.startswith("TUP"))
        base = self.study_run(f"{tag}-joint_lambda0.3lrx1", 0)
        lr, key = self._read(base)

        def run(lam: float, f: float, s: int, test: bool) -> dict:
            paths = yaml.safe_load(self.study_run(f"{tag}-joint_lambda0.3lrx1", s)
                                   .read_text())["init_from"]
            if tup in self.chosen:
                paths = [str(self.chosen[tup] / f"s{s}" / "model.pt")
                         if f"/{_slug(tup)}-warm-lrx" in p else p for p in paths]
            folder = self.out / f"{tag}-joint_lambda{lam:g}lrx{f:g}" / f"s{s}"
            return _run_once(base, [f"model_args.joint_lambda={lam}", *lr_overrides(lr, f),
                                    f"seed={s}", "init_from=" + json.dumps(paths)],
                             folder, self.data_dir, test)

        grid = [(0.3, f, run(0.3, f, 0, False)) for f in (0.5, 0.25, 0.125)]
        best_f = max(grid, key=lambda g: best_valid(g[2], key))[1]
        grid += [(lam, best_f, run(lam, best_f, 0, False)) for lam in (0.7, 0.5)]
        lam, f, _ = max(grid, key=lambda g: best_valid(g[2], key))
        return {"row": row, "warm": row.warm,
                "grid": [(f"joint_lambda={x:g} lr x{y:g}", best_valid(m, key), m["best_epoch"])
                         for x, y, m in grid],
                "chosen": f"joint_lambda={lam:g} lr x{f:g}",
                "runs": [run(lam, f, s, True) for s in range(self.seeds)]}


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
    ext = Extension(a.study, a.out, a.dataset, a.seeds, a.data_dir)
    try:
        results = {label: ext.lr_row(ROW[label]) if ROW[label].grid is None
                   else ext.ktup_row(ROW[label]) for label in labels}
    except SystemExit as e:
        ap.exit(2, f"{e}\n")

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
