"""Grid search on the validation split (the test split is never read).

    python benchmarks/tune.py mkr-lastfm \
        --grid model_args.relation_mlp=true,false --grid train.lr.rec=0.001,0.002 --seeds 2

Every combination is trained with seeds ``0..seeds-1``; the table lists the mean of the
config's monitored validation metric, best first. The same budget (grid size x seeds x
the config's epochs and patience) is given to every model compared in docs/results.md.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

from kgrec.config import load_config
from kgrec.presets import resolve_config
from kgrec.training.experiment import run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", type=resolve_config, help="preset name or YAML file")
    ap.add_argument("--grid", action="append", default=[], help="key=v1,v2,...")
    ap.add_argument("--set", action="append", default=[], dest="fixed", help="key=value for all runs")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    keys, values = [], []
    for g in args.grid:
        k, v = g.split("=", 1)
        keys.append(k)
        values.append(v.split(","))
    rows = []
    for combo in itertools.product(*values) if keys else [()]:
        overrides = [*args.fixed, *(f"{k}={v}" for k, v in zip(keys, combo, strict=True))]
        scores, epochs = [], []
        for seed in range(args.seeds):
            cfg = load_config(args.config, [*overrides, f"seed={seed}"])
            with tempfile.TemporaryDirectory() as tmp:
                m = run(cfg, Path(tmp), progress=False, evaluate_test=False)
            key = cfg.train.monitor.split(".", 1)[1]
            scores.append(m["valid"][key])
            epochs.append(m["best_epoch"])
        rows.append((statistics.mean(scores), statistics.pstdev(scores), overrides, epochs))
        print(f"{rows[-1][0]:.4f} ± {rows[-1][1]:.4f}  best epochs {epochs}  {' '.join(overrides)}",
              flush=True)
    print(f"\nranked by mean validation {cfg.train.monitor} over {args.seeds} seeds:")
    for mean, sd, ov, ep in sorted(rows, key=lambda r: -r[0]):
        print(f"| {mean:.4f} ± {sd:.4f} | {' '.join(ov) or '(preset)'} | {ep} |")


if __name__ == "__main__":
    main()
