"""Seconds per epoch of JNSKR's whole-data training (Chen et al. SIGIR 2020) as the number
of items grows with the observed data held fixed, against a sampled BPR-loss model.

Synthetic data shaped like Amazon-book as released with KGAT and used by JNSKR (KGAT
Table 1: 70,679 users, 24,915 items, 847,733 interactions of which 80% train, 88,572
entities, 39 relations, 2,557,746 triples), scaled to ``--items`` items: users 2.84x items,
entities 3.55x items, training pairs 26x items, triples 28.9x entities. Item popularity is
Zipf-like; heads and tails of the triples are uniform over the entities.

For factor ``f`` in 1, 2, 4, 8 the catalogue gets ``(f - 1) * items`` extra items (KGAT
layout: items are the entities ``0..n_items-1``) with no interaction and no triple: the
observed pairs and triples stay the same while the unobserved user-item pairs grow
``f``-fold and the unobserved triples about ``(1 + (f - 1) * items / entities)^2``-fold.
Each timing is the median over ``--repeats`` epochs after one warm-up epoch, one thread,
the settings timed round-robin.
BPRMF (sampled BPR loss, one negative per observed pair, same batch size) is timed on the
1x data.

Cost model (see ``kgrec/models/jnskr.py``): the steps per epoch depend on the items with
observed pairs only; each step costs ``O((|U| + |E| + |R|) d^2)`` for the Gram terms (every
user and entity row gets a gradient), plus the observed pairs and triples of its batch
times ``d``. Items without any observed pair and with zero negative weight are skipped. So
the epoch time grows with the number of entity rows, linearly and with a small constant
(``2 |E| d^2`` per step), not with the number of unobserved pairs. A KG-light run
(``--users 3000 --others 2000 --pairs 60000 --triples 20000 --relations 10``), where the
Gram part weighs more, grew 1.75x at 8x items (the default run: 1.30x), one thread on an
idle 16-core machine.

Usage: ``PYTHONPATH=src python benchmarks/jnskr_scaling.py [--repeats 7]``. The last line
of the output is JSON:
``{"items_factor": [1, 2, 4, 8], "seconds_per_epoch": [...], "bpr_seconds_per_epoch": ...}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import make_sampler
from kgrec.models.jnskr import JNSKR
from kgrec.utils import machine_description


def synthetic(args: argparse.Namespace, factor: int) -> tuple[KGDataset, Split]:
    """The same observed pairs and triples in a catalogue of ``factor * items`` items."""
    rng = np.random.default_rng(args.seed)
    pop = 1.0 / np.arange(1, args.items + 1) ** 0.8
    pop /= pop.sum()
    users = rng.integers(0, args.users, size=args.pairs * 2)
    items = rng.choice(args.items, size=args.pairs * 2, p=pop)
    pairs = np.unique(np.c_[users, items], axis=0)
    pairs = pairs[rng.permutation(len(pairs))[:args.pairs]]
    heads = rng.integers(0, args.items + args.others, size=args.triples)
    rels = rng.integers(0, args.relations, size=args.triples)
    tails = rng.integers(0, args.items + args.others, size=args.triples)
    n_items = args.items * factor
    # non-item entities come after all items (KGAT layout), so shift them per factor
    shift = n_items - args.items
    triples = np.c_[np.where(heads >= args.items, heads + shift, heads), rels,
                    np.where(tails >= args.items, tails + shift, tails)]
    rows = np.c_[pairs, np.ones(len(pairs), np.int64)]
    ds = KGDataset("synthetic", rows, triples, np.arange(n_items), args.users, n_items,
                   n_items + args.others, args.relations)
    return ds, Split(train=rows, valid=rows[:0], test=rows[:0])


class Timed:
    """A model, its sampler and an Adagrad optimiser; ``epoch()`` trains one epoch and
    returns its wall-clock seconds."""

    def __init__(self, model: torch.nn.Module, sampler, task: str, lr: float) -> None:
        self.model, self.sampler, self.task = model, sampler, task
        self.opt = torch.optim.Adagrad(model.parameters(), lr=lr)
        self.done = 0

    def epoch(self) -> float:
        self.model.train()
        t0 = time.perf_counter()
        for batch in self.sampler.epoch(self.done):
            self.opt.zero_grad(set_to_none=True)
            loss = self.model(batch, task=self.task)
            loss.backward()
            self.opt.step()
        self.done += 1
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=5680)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--others", type=int, default=5100, help="non-item entities")
    p.add_argument("--relations", type=int, default=39)
    p.add_argument("--pairs", type=int, default=52000)
    p.add_argument("--triples", type=int, default=205000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    runs: dict[str, Timed] = {}
    for f in args.factors:
        ds, split = synthetic(args, f)
        torch.manual_seed(args.seed)
        model = JNSKR.build(ds, split, dim=args.dim)
        sampler = make_sampler("jnskr", ds, split, args.batch_size)
        runs[f"x{f}"] = Timed(model, sampler, "rec", 0.05)
        print(f"jnskr x{f}: items={ds.n_items} entities={ds.n_entities} "
              f"observed={len(split.train)} unobserved_pairs="
              f"{ds.n_users * ds.n_items - len(split.train)} steps/epoch={len(sampler)}")
    try:
        from kgrec.models.bprmf import BPRMF
    except ImportError:  # pragma: no cover - BPRMF is written alongside
        print("bprmf not available; skipped")
    else:
        ds, split = synthetic(args, 1)
        torch.manual_seed(args.seed)
        sampler = make_sampler("bpr", ds, split, args.batch_size)
        runs["bpr"] = Timed(BPRMF(ds.n_users, ds.n_items, dim=args.dim), sampler, "rec", 0.05)
        print(f"bprmf x1: steps/epoch={len(sampler)}")
    # one warm-up epoch each, then the repeats round-robin so that machine drift hits
    # every setting alike
    times: dict[str, list[float]] = {k: [] for k in runs}
    for rep in range(args.repeats + 1):
        for k, run in runs.items():
            t = run.epoch()
            if rep:
                times[k].append(t)
    med = {k: round(statistics.median(v), 4) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k}: median {med[k]:.4f} s/epoch over {len(v)} "
              f"(min {min(v):.4f}, max {max(v):.4f})")
    seconds = [med[f"x{f}"] for f in args.factors]
    bpr_seconds = med.get("bpr")
    print(f"growth x{args.factors[-1]}/x{args.factors[0]}: {seconds[-1] / seconds[0]:.2f}")
    print(f"machine: {machine_description()}, 1 thread, {time.strftime('%Y-%m-%d')}")
    print(json.dumps({"items_factor": args.factors, "seconds_per_epoch": seconds,
                      "bpr_seconds_per_epoch": bpr_seconds}))


if __name__ == "__main__":
    main()
