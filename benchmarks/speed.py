"""Speed benchmark: seconds per training epoch and per full evaluation, by preset.

    python benchmarks/speed.py [--cases mkr-lastfm,mkr-book] [--repeats 5] [--threads 1]

For each case: the time of one training epoch through kgrec's trainer and of the same epoch in
a minimal hand-written loop, measured alternately (trainer, loop, trainer, ...) so that a
busy machine slows both alike; the ratio is the median of the per-round ratios. The minimal
loop does the same work as the trainer: the same model, batches, schedule and optimisers;
it shuffles with ``torch.randperm``, slices the tensors in a plain ``for`` and draws MKR's
uniform corrupted tails with ``torch.randint`` (for samplers it cannot redo plainly, e.g.
BPR negatives that avoid positives, it uses batches pre-drawn by kgrec's sampler, which
leaves sampling out of the loop's time). Also times a full top-K evaluation of all users
(every item not among the user's training positives ranked). ``mkr-lastfm`` also times a
whole run to its validation-best epoch. Prints a markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from kgrec.config import load_config
from kgrec.data.samplers import make_sampler
from kgrec.data.splits import Split
from kgrec.evaluation import evaluate_kg, evaluate_topk
from kgrec.presets import preset_path
from kgrec.training.experiment import build_model, make_optimizer, prepare_data, run
from kgrec.training.schedule import default_schedule
from kgrec.training.trainer import Trainer
from kgrec.utils import machine_description

REPO = Path(__file__).resolve().parents[1]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def minimal_loop(model, samplers, opts, schedule, tasks):
    """``(epoch_fn, plain)``: one epoch of the same model, batches, schedule and optimisers in a
    plain loop; ``plain`` when it samples as the trainer does (CTR rows; unfiltered triples
    with uniform corrupted tails), else it replays batches pre-drawn by kgrec's samplers."""
    kinds = {t: type(samplers[t]).__name__ for t in tasks}
    plain = all(k == "CTRSampler" or (k == "TripleSampler" and samplers[t].hr is None)
                for t, k in kinds.items())
    bs = {t: samplers[t].batch_size for t in tasks}
    if not plain:
        pre = {t: list(samplers[t].epoch(123)) for t in tasks}

    def batches(task):
        if not plain:
            yield from pre[task]
            return
        s = samplers[task]
        while True:
            perm = torch.randperm(s.n)
            data = {k: v[perm] for k, v in s.data.items()}
            for i in range(0, s.n, bs[task]):
                batch = {k: v[i:i + bs[task]] for k, v in data.items()}
                if kinds[task] == "TripleSampler" and s.corrupt_sides != "none":
                    batch["corrupt_tails"] = torch.randint(s.n_entities, (len(batch["tails"]),))
                yield batch
            if task == tasks[0]:
                return

    def epoch():
        its = {t: batches(t) for t in tasks}
        while True:
            for task, steps in schedule:
                for _ in range(steps):
                    batch = next(its[task], None)
                    if batch is None:
                        if task == tasks[0]:
                            return
                        its[task] = batches(task)
                        batch = next(its[task])
                    opts[task].zero_grad(set_to_none=True)
                    model(batch, task=task).backward()
                    opts[task].step()

    return epoch, plain


def bench_case(name: str, repeats: int, threads: int, epochs_only: bool = False) -> dict:
    cfg = load_config(preset_path(name), [f"train.threads={threads}"])
    torch.set_num_threads(threads)
    dataset, split = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dataset, split)
    tasks = model.tasks
    samplers = {t: make_sampler(model.task_samplers[t], dataset, split,
                                cfg.train.for_task(cfg.train.batch_size, t),
                                **{**model.sampler_defaults(t), **cfg.train.sampler_options.get(t, {})})
                for t in tasks}
    opts = {t: make_optimizer(cfg.train.optimizer, model.parameters(), cfg.train.for_task(cfg.train.lr, t))
            for t in tasks}
    schedule = cfg.train.schedule or default_schedule(tasks)
    trainer = Trainer(model, samplers, opts, schedule, validate=dict, monitor="auc", epochs=1,
                      patience=0, progress=False)
    epoch = iter(range(10**6))
    out = {"case": name, "threads": threads}
    minimal_epoch, plain = minimal_loop(model, samplers, opts, schedule, tasks)
    out["minimal_loop"] = "plain sampling" if plain else "pre-drawn batches"
    pairs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainer.train_epoch(next(epoch))
        t1 = time.perf_counter()
        minimal_epoch()
        pairs.append((t1 - t0, time.perf_counter() - t1))
    out["epoch_s"] = statistics.median(p[0] for p in pairs)
    out["minimal_epoch_s"] = statistics.median(p[1] for p in pairs)
    out["ratio"] = statistics.median(p[0] / p[1] for p in pairs)
    if epochs_only:
        return out
    if "topk" in cfg.eval.protocols or "ctr" in cfg.eval.protocols:
        all_users = Split(train=split.train, valid=split.train[:0], test=np.stack(
            [np.arange(dataset.n_users), np.zeros(dataset.n_users, int), np.ones(dataset.n_users, int)], 1))
        out["topk_eval_users"] = dataset.n_users
        out["topk_eval_s"] = median_time(
            lambda: evaluate_topk(model, all_users, "test", cfg.eval.ks, batch_users=cfg.eval.batch_users,
                                  n_users=dataset.n_users, n_items=dataset.n_items), repeats)
    if "kg" in cfg.eval.protocols and dataset.kg_split:
        known = np.concatenate(list(dataset.kg_split.values()))
        out["kg_eval_triples"] = len(dataset.kg_split["test"])
        out["kg_eval_s"] = median_time(lambda: evaluate_kg(model, dataset.kg_split["test"], known),
                                       max(1, repeats // 3))
    if name == "mkr-lastfm":
        with tempfile.TemporaryDirectory() as tmp:
            m = run(cfg, Path(tmp) / "probe", progress=False)
            best = m["best_epoch"]
            cfg_best = load_config(preset_path(name),
                                   [f"train.threads={threads}", f"train.epochs={best}"])
            t0 = time.perf_counter()
            run(cfg_best, Path(tmp) / "to-best", progress=False)
            out["run_to_best_epoch_s"] = time.perf_counter() - t0
            out["best_epoch"] = best
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="mkr-lastfm,mkr-book")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs-only", action="store_true", help="time training epochs only")
    args = ap.parse_args()
    results = [bench_case(c, args.repeats, args.threads, args.epochs_only)
               for c in args.cases.split(",") if c]
    print(f"machine: {machine_description()}, "
          f"{args.threads} thread(s), {time.strftime('%Y-%m-%d')}, medians of {args.repeats}")
    print("| case | epoch s | minimal loop epoch s | ratio (median of rounds) | full top-K eval s (users) "
          "| KG eval s | run to best epoch s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        def fmt(k, r=r):
            return f"{r[k]:.3f}" if k in r else "-"

        users = f" ({r['topk_eval_users']})" if "topk_eval_users" in r else ""
        print(f"| {r['case']} | {fmt('epoch_s')} | {fmt('minimal_epoch_s')} | {r['ratio']:.3f} "
              f"({r['minimal_loop']}) | {fmt('topk_eval_s')}{users} | "
              f"{fmt('kg_eval_s')} | {fmt('run_to_best_epoch_s')} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
