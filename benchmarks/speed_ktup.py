"""KTUP speed on Book-Crossing: one training epoch and one full KG-completion evaluation.

    python benchmarks/speed_ktup.py [--config ktup-book] [--repeats 3] [--threads 1]

The epoch goes through kgrec's trainer (alternating rec / kg steps as the preset's schedule);
the KG evaluation ranks every entity as head and as tail for each held-out KG test triple
(raw and filtered ranks, relation categories) with ``evaluate_kg``. Medians of ``--repeats``;
printed, and written as the ``speed:ktup`` block of ``--write-results PATH`` when given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kgrec.config import load_config
from kgrec.data.samplers import make_sampler
from kgrec.evaluation import evaluate_kg
from kgrec.presets import resolve_config
from kgrec.reproduce import update_section
from kgrec.training.experiment import build_model, make_optimizers, prepare_data
from kgrec.training.schedule import default_schedule
from kgrec.training.trainer import Trainer
from kgrec.utils import machine_description


def _times(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="ktup-book", help="preset name or YAML file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write-results", type=Path, default=None, metavar="PATH",
                    help="also write the table into this markdown file (e.g. docs/results.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(resolve_config(args.config), [f"train.threads={args.threads}"])
    dataset, split = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dataset, split)
    samplers = {t: make_sampler(model.task_samplers[t], dataset, split,
                                cfg.train.for_task(cfg.train.batch_size, t),
                                **cfg.train.sampler_options.get(t, {})) for t in model.tasks}
    opts = make_optimizers(cfg, model)  # one joint optimiser under train.joint
    trainer = Trainer(model, samplers, opts, cfg.train.schedule or default_schedule(model.tasks),
                      validate=dict, monitor="none", epochs=1, patience=0, progress=False,
                      joint=cfg.train.joint)
    epochs = iter(range(10**6))
    epoch_s = _times(lambda: trainer.train_epoch(next(epochs)), args.repeats)
    model.eval()
    known = np.concatenate([dataset.kg_split[k] for k in ("train", "valid", "test")])
    test = dataset.kg_split["test"]
    with torch.no_grad():
        kg_s = _times(lambda: evaluate_kg(model, test, known), args.repeats)
    n_rec = len(samplers[model.tasks[0]])
    res = {"config": str(args.config), "threads": args.threads, "epoch_s": epoch_s,
           "kg_eval_s": kg_s, "rec_batches": n_rec, "kg_test_triples": len(test),
           "n_entities": dataset.n_entities}
    med = statistics.median
    body = "\n".join([
        f"KTUP on Book-Crossing (`{args.config}`: min_user_positives "
        f"{cfg.data.min_user_positives}, {len(split.train)} training pairs, {n_rec} rec batches "
        f"of {cfg.train.for_task(cfg.train.batch_size, 'rec')} per epoch, schedule "
        f"{cfg.train.schedule}); machine: {machine_description(cfg.train.device)}, "
        f"{args.threads} thread(s), {time.strftime('%Y-%m-%d')}; "
        f"median of {args.repeats}. Command: `python {' '.join(sys.argv)}`",
        "",
        "| measurement | median s | all runs s |",
        "|---|---|---|",
        f"| one training epoch (rec + kg steps) | {med(epoch_s):.2f} | "
        f"{', '.join(f'{x:.2f}' for x in epoch_s)} |",
        f"| full KG-completion evaluation ({len(test)} test triples x 2 directions x "
        f"{dataset.n_entities} entities, filtered + raw) | {med(kg_s):.2f} | "
        f"{', '.join(f'{x:.2f}' for x in kg_s)} |",
    ])
    print(body)
    print(json.dumps(res))
    if args.write_results is not None:
        update_section(args.write_results, "speed:ktup", body)


if __name__ == "__main__":
    main()
