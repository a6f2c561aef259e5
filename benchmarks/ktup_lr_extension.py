"""TUP (soft) and KTUP (soft) on DBbook2014 with their learning-rate grids extended downward.

`kgrec reproduce ktup` gives every row a 3-point validation grid (the preset's lr x{1, 2, 4};
KTUP: lambda in {0.7, 0.5, 0.3} at lr x1). TUP (soft) chose the lowest lr (the grid's edge)
and KTUP's lr was not searched. This script takes a finished warm-start study folder
(``--study``, the ``--out`` of ``kgrec reproduce ktup``) and gives both rows a 5-point grid on
seed 0, selected on validation Recall@10 like the study:

* TUP (soft), from the study's BPRMF: lr x{0.25, 0.5} added to the study's x{1, 2, 4};
* KTUP (soft), from the selected TUP (soft) and the study's TransH, seed for seed: lambda 0.3
  (the study's choice) at lr x{0.5, 0.25, 0.125}, then lambda 0.7 and 0.5 at the best of those;

then seeds 0..N-1 of each selected point (each tested once) and prints Tables 2, 4 and 3 in
the study's format. Same budget and validation spacing as the study (copied from its run
configs). ``--write-results FILE`` writes blocks ``reproduce:ktup-lr-ext-table{2,4,3}:DATASET``.

    python benchmarks/ktup_lr_extension.py --study runs/reproduce --out runs/ktup-lr-ext
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from kgrec.studies.ktup import ROWS, _run_once, table2, table3, table4
from kgrec.utils import machine_description

ROW = {r.label: r for r in ROWS}


def _lr_sets(cfg: Path, factor: float) -> list[str]:
    """``train.lr`` of ``cfg`` (the study's lr x1 run) times ``factor``, as overrides."""
    import yaml

    lr = yaml.safe_load(cfg.read_text())["train"]["lr"]
    if isinstance(lr, dict):
        return [f"train.lr.{t}={v * factor:.6g}" for t, v in lr.items()]
    return [f"train.lr={lr * factor:.6g}"]


def _best_valid(m: dict, key: str = "recall@10") -> float:
    return max(h[f"valid_{key}"] for h in m["history"] if f"valid_{key}" in h)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", type=Path, required=True, help="a warm-start study's --out")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dataset", default="dbbook2014")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--write-results", type=Path, default=None)
    a = ap.parse_args(argv)
    study, out = a.study / a.dataset, a.out / a.dataset
    tup_base = study / "tup-soft-warm-lrx1" / "s0" / "config.yaml"
    ktup_base = study / "ktup-soft-warm-joint_lambda0.3lrx1" / "s0" / "config.yaml"
    import yaml

    for need in (tup_base, ktup_base):
        if not need.is_file():
            ap.exit(2, f"error: {need}: not a finished warm-start study of {a.dataset}\n")
    bpr_dir = Path(yaml.safe_load(tup_base.read_text())["init_from"][0]).parent.parent
    transh_dir = study / "transh-warm-lrx1"
    if not (transh_dir / "s0" / "model.pt").is_file():
        ap.exit(2, f"error: {transh_dir}: the study's selected TransH (lr x1) is needed\n")

    def init(*paths: Path) -> str:
        return "init_from=" + json.dumps([str(p) for p in paths])

    # --- TUP (soft): the study's x1, x2, x4 plus x0.5, x0.25 ---------------------------
    grid = []
    for f in (0.25, 0.5, 1.0, 2.0, 4.0):
        folder = (study if f >= 1 else out) / f"tup-soft-warm-lrx{f:g}"
        m = _run_once(tup_base, [*_lr_sets(tup_base, f), "seed=0",
                                 init(bpr_dir / "s0" / "model.pt")],
                      folder / "s0", a.data_dir, False)
        grid.append((f"lr x{f:g}", _best_valid(m), m["best_epoch"], f, folder))
    pick = max(grid, key=lambda g: g[1])
    tup_dirs = [pick[4] / f"s{s}" for s in range(a.seeds)]
    tup_runs = [_run_once(tup_base, [*_lr_sets(tup_base, pick[3]), f"seed={s}",
                                     init(bpr_dir / f"s{s}" / "model.pt")],
                          d, a.data_dir, True) for s, d in enumerate(tup_dirs)]
    results = {"TUP (soft)": {"row": ROW["TUP (soft)"], "grid": [g[:3] for g in grid],
                              "chosen": pick[0], "runs": tup_runs, "warm": ("BPRMF",)}}

    # --- KTUP (soft) from that TUP + TransH: lambda 0.3 at three lrs, then lambda -----
    def ktup(lam: float, f: float, s: int, test: bool) -> dict:
        folder = out / f"ktup-soft-warm-joint_lambda{lam:g}lrx{f:g}" / f"s{s}"
        return _run_once(ktup_base, [f"model_args.joint_lambda={lam}", *_lr_sets(ktup_base, f),
                                     f"seed={s}", init(tup_dirs[s] / "model.pt",
                                                       transh_dir / f"s{s}" / "model.pt")],
                         folder, a.data_dir, test)

    kgrid = [(0.3, f, ktup(0.3, f, 0, False)) for f in (0.5, 0.25, 0.125)]
    best_f = max(kgrid, key=lambda g: _best_valid(g[2]))[1]
    kgrid += [(lam, best_f, ktup(lam, best_f, 0, False)) for lam in (0.7, 0.5)]
    lam, f, _ = max(kgrid, key=lambda g: _best_valid(g[2]))
    results["KTUP (soft)"] = {
        "row": ROW["KTUP (soft)"], "warm": ("TUP (soft)", "TransH"),
        "grid": [(f"joint_lambda={x:g} lr x{y:g}", _best_valid(m), m["best_epoch"])
                 for x, y, m in kgrid],
        "chosen": f"joint_lambda={lam:g} lr x{f:g}",
        "runs": [ktup(lam, f, s, True) for s in range(a.seeds)]}

    cmd = "python benchmarks/ktup_lr_extension.py " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    caption = (f"`{cmd}`; {machine_description('cpu')}; the study's budget, validation spacing "
               f"and patience (its run configs); seeds 0..{a.seeds - 1}; grid of 5 per row on "
               "seed 0, selected on validation Recall@10: TUP (soft) lr x{0.25, 0.5} added to "
               "the study's x{1, 2, 4}; KTUP (soft) lambda 0.3 at lr x{0.5, 0.25, 0.125}, then "
               "lambda 0.7 and 0.5 at the best of those; KTUP starts from this table's TUP "
               "(soft) and the study's TransH, seed for seed; honest negative sampler.")
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
