"""JNSKR's efficiency claim (Chen et al. SIGIR 2020, Section 4.4: non-sampling training
reaches its best model in less time than sampling-based KG recommenders) measured on the
real data: per-epoch time and time to the validation-best model of JNSKR against BPRMF and
CKE, one process, one thread, the same machine, run one after the other.

For each dataset and model the preset ``MODEL-DATASET`` is trained once (seed 0) with the
same stopping rule for all (``--set`` overrides, default: at most 100 epochs, validation
every epoch on Recall@20, patience 10, Recall/NDCG at 10, 20, 40) and the test split is
never read. When a model has no preset for a dataset, the model's ``-book`` preset is used
with the ``data:`` section of ``bprmf-DATASET`` (the row says so).

Figures per run, from the run's ``metrics.json``:

* ``CPU s/epoch`` and ``CPU s to best``: the process's CPU seconds in each epoch's training
  (``time.process_time`` around ``Trainer.train_epoch``; validation excluded), the mean and
  the sum up to the best epoch: with one thread this is the time on an idle core, and it
  stays comparable when the machine is shared;
* ``wall s/epoch``: wall-clock training seconds per epoch (``train_seconds / epochs``);
* ``best epoch`` and the validation Recall@20 there;
* ``examples to best``: training examples seen up to the best epoch (observed pairs for
  JNSKR, whose step also covers every unobserved pair of its items; ``(u, i+, i-)`` rows for
  BPRMF; rec rows for CKE, whose KG steps are counted apart);
* ``wall s to best``: the epochs' wall-clock seconds up to the best one, validation included;
* ratios: each model's CPU seconds per epoch and to the best model over JNSKR's.

A finished run folder with the same configuration is reused (so ``--write`` after a run
costs nothing); delete ``--out`` to measure again.

Usage::

    PYTHONPATH=src python benchmarks/jnskr_time.py --datasets book dbbook2014 \\
        [--models jnskr bprmf cke] [--out runs/jnskr-time] [--set KEY=VALUE ...] \\
        [--write docs/results.md]

The last line of the output is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kgrec.config import load_config
from kgrec.data.registry import atomic_write_bytes
from kgrec.presets import PRESET_DIR
from kgrec.reproduce import update_section
from kgrec.training.experiment import run
from kgrec.training.trainer import Trainer
from kgrec.utils import machine_description

#: the stopping rule shared by every model of the comparison
DEFAULT_SETS = ["train.threads=1", "train.epochs=100", "train.eval_every=1", "train.patience=10",
                "train.monitor=valid.recall@20", "eval.ks=[10,20,40]"]


def raw_config(model: str, dataset: str) -> tuple[dict[str, Any], str]:
    """The preset ``MODEL-DATASET`` as a dict, or ``MODEL-book`` with ``bprmf-DATASET``'s
    ``data:`` section; and where it came from."""
    path = PRESET_DIR / f"{model}-{dataset}.yaml"
    if path.is_file():
        return yaml.safe_load(path.read_text()), path.stem
    raw = yaml.safe_load((PRESET_DIR / f"{model}-book.yaml").read_text())
    raw["data"] = yaml.safe_load((PRESET_DIR / f"bprmf-{dataset}.yaml").read_text())["data"]
    return raw, f"{model}-book with bprmf-{dataset}'s data"


def summarise(metrics: dict[str, Any], monitor: str = "valid_recall@20") -> dict[str, Any]:
    """Per-epoch and time-to-best figures of one run's ``metrics.json``."""
    history = metrics["history"]
    epochs = len(history)
    scored = [h for h in history if monitor in h]
    best = max(scored, key=lambda h: h[monitor])  # first of equals, as the trainer's stopper
    per_epoch = metrics["train_seconds"] / max(epochs, 1)
    examples = {k[len("examples_"):]: v for k, v in best.items() if k.startswith("examples_")}
    return {
        "epochs": epochs,
        "best_epoch": best["epoch"] + 1,
        "valid_recall@20": round(best[monitor], 4),
        "s_per_epoch": round(per_epoch, 3),
        "train_s_to_best": round(per_epoch * (best["epoch"] + 1), 1),
        "wall_s_to_best": round(sum(h["seconds"] for h in history[:best["epoch"] + 1]), 1),
        "examples_to_best": examples,
    }


def measure(model: str, dataset: str, out: Path, sets: list[str],
            data_dir: str | None = None) -> dict[str, Any]:
    raw, source = raw_config(model, dataset)
    cfg = load_config(raw=raw, overrides=sets)
    folder = out / f"{model}-{dataset}"
    done = folder / "metrics.json"
    metrics = json.loads(done.read_text()) if done.exists() else None
    same = (folder / "config.yaml").exists() and yaml.safe_load(
        (folder / "config.yaml").read_text()) == cfg.model_dump(mode="json")
    cpu_file = folder / "cpu_seconds.json"
    if metrics is None or not metrics.get("finished") or not same or not cpu_file.exists():
        cpu: list[float] = []
        original = Trainer.train_epoch

        def timed(self: Trainer, epoch: int) -> dict[str, float]:
            t0 = time.process_time()
            try:
                return original(self, epoch)
            finally:
                cpu.append(time.process_time() - t0)

        Trainer.train_epoch = timed  # type: ignore[method-assign]
        try:
            metrics = run(cfg, folder, data_dir=data_dir, resume=False, progress=False,
                          evaluate_test=False)
        finally:
            Trainer.train_epoch = original  # type: ignore[method-assign]
        atomic_write_bytes(cpu_file, json.dumps(cpu).encode())
    cpu = json.loads(cpu_file.read_text())
    out = summarise(metrics, "valid_" + cfg.train.monitor.split(".", 1)[1])
    best = out["best_epoch"]
    out["cpu_s_per_epoch"] = round(sum(cpu) / max(len(cpu), 1), 3)
    out["cpu_s_to_best"] = round(sum(cpu[:best]), 1)
    return {"model": model, "dataset": dataset, "config": source, **out}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | model | config | best epoch (of run) | valid Recall@20 | examples to best "
             "| CPU s/epoch | CPU s to best | wall s/epoch | wall s to best (with validation) "
             "| CPU s/epoch vs JNSKR | CPU s to best vs JNSKR |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = next((x for x in rows if x["dataset"] == r["dataset"] and x["model"] == "jnskr"),
                   None)
        ex = ", ".join(f"{k} {v:,}" for k, v in r["examples_to_best"].items())
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['config']} | {r['best_epoch']} of {r['epochs']} | "
            f"{r['valid_recall@20']:.4f} | {ex} | {r['cpu_s_per_epoch']:.2f} | "
            f"{r['cpu_s_to_best']:.1f} | {r['s_per_epoch']:.2f} | {r['wall_s_to_best']:.0f} | "
            f"{_ratio(r['cpu_s_per_epoch'], ref['cpu_s_per_epoch'] if ref else 0)} | "
            f"{_ratio(r['cpu_s_to_best'], ref['cpu_s_to_best'] if ref else 0)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["book", "dbbook2014"])
    ap.add_argument("--models", nargs="+", default=["jnskr", "bprmf", "cke"])
    ap.add_argument("--out", type=Path, default=Path("runs/jnskr-time"))
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="override KEY=VALUE for every run (after the shared stopping rule)")
    ap.add_argument("--model-set", dest="model_sets", action="append", default=[],
                    metavar="MODEL[@DATASET]:KEY=VALUE",
                    help="override for one model's runs only, or its run on one dataset (e.g. a "
                    "lower epoch cap for a slow one)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--write", type=Path, default=None,
                    help="write the table into this markdown file (block jnskr:time)")
    ap.add_argument("--summarise", nargs="+", type=Path, default=None, metavar="RUN",
                    help="only print the figures of finished run folders (e.g. a c0 sweep)")
    args = ap.parse_args(argv)
    if args.summarise:
        for folder in args.summarise:
            m = json.loads((folder / "metrics.json").read_text())
            print(json.dumps({"run": str(folder), **summarise(m)}))
        return 0
    sets = DEFAULT_SETS + args.sets
    own: dict[str, list[str]] = {}
    for item in args.model_sets:
        model, sep, kv = item.partition(":")
        if not sep or "=" not in kv:
            ap.error(f"--model-set wants MODEL[@DATASET]:KEY=VALUE, got {item!r}")
        own.setdefault(model, []).append(kv)
    rows = []
    for dataset in args.datasets:
        for model in args.models:
            extra = own.get(model, []) + own.get(f"{model}@{dataset}", [])
            rows.append(measure(model, dataset, args.out, sets + extra, args.data_dir))
            print(json.dumps(rows[-1]), flush=True)
    text = table(rows)
    print(text)
    if args.write is not None:
        cmd = "python benchmarks/jnskr_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
        date = datetime.now(UTC).strftime("%Y-%m-%d")
        body = (f"### JNSKR's efficiency: time to the validation-best model (issue 16)\n\n"
                f"Command: `PYTHONPATH=src {cmd}`; machine: {machine_description()}, one "
                f"thread per run, {date}; seed 0; every run: "
                f"`{' '.join('--set ' + s for s in DEFAULT_SETS)}` (test split not read).\n\n"
                f"{text}\n")
        update_section(args.write, "jnskr:time", body)
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
