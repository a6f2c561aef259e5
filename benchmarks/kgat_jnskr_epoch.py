"""Seconds per training epoch of KGAT and JNSKR on the same data (issue 15; JNSKR's paper
claims a large training-time advantage over KGAT).

    python benchmarks/kgat_jnskr_epoch.py [--dataset book] [--epochs 2] [--threads 1]

Each model is built from its preset (``kgat-DATASET``, ``jnskr-DATASET``) and trained
for ``--epochs`` epochs through kgrec's trainer, without validation; the median epoch
time is printed (KGAT's includes its per-epoch attention update), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from kgrec.config import load_config
from kgrec.data.samplers import make_sampler
from kgrec.presets import preset_path
from kgrec.training.experiment import build_model, make_optimizer, prepare_data
from kgrec.training.schedule import default_schedule
from kgrec.training.trainer import Trainer


def epoch_seconds(model_name: str, dataset: str, epochs: int, threads: int) -> dict:
    cfg = load_config(preset_path(f"{model_name}-{dataset}"), [f"train.threads={threads}"])
    torch.set_num_threads(threads)
    data, split = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data, split)
    samplers = {t: make_sampler(model.task_samplers[t], data, split,
                                cfg.train.for_task(cfg.train.batch_size, t))
                for t in model.tasks}
    opts = {t: make_optimizer(cfg.train.optimizer, model.parameters(),
                              cfg.train.for_task(cfg.train.lr, t)) for t in model.tasks}
    trainer = Trainer(model, samplers, opts, cfg.train.schedule or default_schedule(model.tasks),
                      validate=dict, monitor="x", epochs=epochs, patience=epochs,
                      progress=False)
    times = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        hook = getattr(model, "on_epoch_start", None)
        trainer.train_epoch(epoch + 1 if hook else epoch)  # KGAT: include an attention update
        times.append(time.perf_counter() - t0)
    steps = {t: len(s) for t, s in samplers.items()}
    return {"model": model_name, "dataset": dataset, "epoch_s": statistics.median(times),
            "epochs": epochs, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="book")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    rows = [epoch_seconds(m, args.dataset, args.epochs, args.threads) for m in ("kgat", "jnskr")]
    print(f"| model | dataset | s / epoch (median of {args.epochs}) | main-task steps |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['dataset']} | {r['epoch_s']:.1f} | {r['steps']} |")
    ratio = rows[0]["epoch_s"] / rows[1]["epoch_s"]
    print(f"KGAT / JNSKR epoch time: {ratio:.1f}x ({platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s), {time.strftime('%Y-%m-%d')})")
    print(json.dumps({"rows": rows, "ratio": ratio}))


if __name__ == "__main__":
    main()
