"""Why HKRM is 0.03 AUC above every other CTR model on Last.FM (`ctr:lastfm`): leak or real?

    KGREC_DATA=../shared/data python benchmarks/hkrm_lastfm_gap.py [--seed 0] [--lr 0.01] \
        [--out /tmp/hkrm-gap] [--threads 1]

Three parts, all on the 6:2:2 split of ``--seed`` (MKR's Last.FM protocol, as `ctr:lastfm`):

1. **Protocol checks** (no training): (user, item) pairs in two splits or with both labels;
   whether HKRM's test queries are exactly the user's training positives (no validation or
   test pair); how many training rows have their own target in their query; the mean query
   size by label in training (as ``HKRM._query_mask`` builds it) and at test; the test AUC of
   the user-level counts alone (``-p``: minus the user's training positives; ``m - p``:
   training negatives minus positives), which the protocol's per-user balance (each user has
   as many sampled negatives as positives) makes informative.
2. **Non-learned scores**: popularity (training positives of the target) and item-item cosine
   co-occurrence over the training positives, averaged over the user's training positives.
3. **Controls** trained with `ctr:lastfm`'s fixed settings (validation AUC, patience 3, at most
   100 epochs, 500,000 training examples, one thread), HKRM at ``--lr`` (the factor that
   `ctr:lastfm`'s grid chose) and NCF at ``--ncf-lr``: HKRM, HKRM with ``balanced_query``
   (equal query size for both labels within a user), HKRM-Item, HKRM-woKL, HKRM whose users
   each get another user's query in training and test, and NCF. Each row gives test AUC,
   the per-user AUC (GAUC: the mean over users with both labels in test of their AUC,
   weighted by their test rows) and, for HKRM, the test AUC when the trained model reads
   another user's query (shuffled across all users / among users with the same query size).
   Then test AUC by bucket (target popularity, user's query size) for HKRM, HKRM-Item, NCF.

Finished runs under ``--out`` are reused. Prints markdown tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from kgrec import api
from kgrec.data.registry import load_dataset
from kgrec.data.splits import make_split
from kgrec.evaluation.ctr import auc, ctr_scores
from kgrec.utils import machine_description

#: `ctr:lastfm`'s fixed settings (benchmarks/compare_ctr.py FIXED plus that block's --set)
FIXED = ["train.monitor=valid.auc", "eval.protocols=[ctr]", "train.max_examples.rec=500000",
         "train.patience=3", "train.epochs=100"]


def pair_keys(rows: np.ndarray, n_items: int) -> np.ndarray:
    return rows[:, 0].astype(np.int64) * n_items + rows[:, 1]


def count_matrix(rows: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user: training positives ``p`` and training negatives ``m``."""
    p = np.bincount(rows[rows[:, 2] == 1, 0], minlength=n_users)
    m = np.bincount(rows[rows[:, 2] == 0, 0], minlength=n_users)
    return p, m


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Mean per-user AUC over users with both labels, weighted by their rows."""
    total = weight = 0.0
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(users[order]) != 0, True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        y = labels[idx]
        if 0 < y.sum() < len(y):
            total += auc(y, scores[idx]) * len(y)
            weight += len(y)
    return total / weight if weight else float("nan")


def item_cosine_scores(train: np.ndarray, rows: np.ndarray, n_users: int,
                       n_items: int) -> np.ndarray:
    """Mean cosine co-occurrence (over users' training positives) of each row's item with the
    user's training positives other than the item itself; 0 for an empty history."""
    pos = np.unique(train[train[:, 2] == 1, :2], axis=0)
    x = np.zeros((n_users, n_items), dtype=np.float32)
    x[pos[:, 0], pos[:, 1]] = 1.0
    co = x.T @ x
    norm = np.sqrt(np.diag(co)).copy()
    sim = co / np.maximum(np.outer(norm, norm), 1e-12)
    out = np.zeros(len(rows))
    for a in range(0, len(rows), 2048):  # chunks of rows: (R, n_items) at a time
        r = rows[a:a + 2048]
        hist = x[r[:, 0]]  # the row's user's training positives
        hist[np.arange(len(r)), r[:, 1]] = 0.0
        n = hist.sum(1)
        out[a:a + 2048] = np.where(n > 0, (hist * sim[r[:, 1]]).sum(1) / np.maximum(n, 1), 0.0)
    return out


def protocol_checks(dataset, split) -> dict:
    from kgrec.models.hkrm import HKRM

    tr, va, te = split.train, split.valid, split.test
    k = {n: pair_keys(r, dataset.n_items) for n, r in (("train", tr), ("valid", va), ("test", te))}
    every = np.concatenate(list(k.values()))
    model = HKRM.build(dataset, split, dim=4)  # buffers only: the queries HKRM reads
    q = model.query_items.numpy()
    qrows = np.stack(np.nonzero(q >= 0), 1)
    qkeys = np.unique(qrows[:, 0] * dataset.n_items + q[q >= 0])
    trpos = np.unique(k["train"][tr[:, 2] == 1])
    with torch.no_grad():
        qt, valid = model._query_mask(torch.as_tensor(tr[:, 0]), torch.as_tensor(tr[:, 1]))
        own = ((qt == torch.as_tensor(tr[:, 1])[:, None]) & valid).any(1).sum()
        size_tr = valid.sum(1).numpy()
        size_te = model._query_mask(torch.as_tensor(te[:, 0]), None)[1].sum(1).numpy()
    p, m = count_matrix(tr, dataset.n_users)
    return {
        "pairs_in_two_splits": int(len(every) - len(np.unique(every))),
        "repeated_pairs_any_label": int(len(dataset.interactions)
                                      - len(np.unique(pair_keys(dataset.interactions,
                                                                dataset.n_items)))),
        "queries_equal_train_positives": bool(np.array_equal(qkeys, trpos)),
        "query_pairs_in_valid": int(np.isin(qkeys, k["valid"]).sum()),
        "query_pairs_in_test": int(np.isin(qkeys, k["test"]).sum()),
        "train_rows_with_target_in_query": int(own),
        "train_query_size": {"pos": float(size_tr[tr[:, 2] == 1].mean()),
                             "neg": float(size_tr[tr[:, 2] == 0].mean())},
        "test_query_size": {"pos": float(size_te[te[:, 2] == 1].mean()),
                            "neg": float(size_te[te[:, 2] == 0].mean())},
        "test_auc_minus_p": auc(te[:, 2], -p[te[:, 0]]),
        "test_auc_m_minus_p": auc(te[:, 2], (m - p)[te[:, 0]]),
    }


@contextlib.contextmanager
def shuffled_queries(seed: int = 123) -> Iterator[None]:
    """While active, ``HKRM.build`` gives each user another user's query (a fixed random
    permutation of the users' rows), in training and evaluation alike."""
    import kgrec.models.hkrm as hkrm

    original = hkrm.user_queries

    def permuted(*args, **kwargs):
        q = original(*args, **kwargs)
        return q[np.random.default_rng(seed).permutation(len(q))]

    hkrm.user_queries = permuted
    try:
        yield
    finally:
        hkrm.user_queries = original


def train_run(name: str, preset: str, sets: list[str], out: Path, data_dir) -> api.Result:
    run_dir = out / name
    if (run_dir / "model.pt").is_file() and (run_dir / "metrics.json").is_file():
        return api.load(run_dir, data_dir)
    ctx = shuffled_queries() if name == "hkrm-shuffled" else contextlib.nullcontext()
    with ctx:
        return api.train(preset, out=run_dir, data_dir=data_dir, set=sets, progress=False)


def read_other_query(model, rows: np.ndarray, same_size: bool, seed: int = 0) -> float:
    """Test AUC of a trained HKRM when every user reads another user's query."""
    q = model.query_items.clone()
    size = (q >= 0).sum(1).numpy()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(q))
    if same_size:
        perm = np.arange(len(q))
        for s in np.unique(size):
            idx = np.flatnonzero(size == s)
            perm[idx] = rng.permutation(idx)
    model.query_items = q[torch.as_tensor(perm)]
    try:
        return auc(rows[:, 2], ctr_scores(model, rows))
    finally:
        model.query_items = q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.01, help="HKRM's learning rate")
    ap.add_argument("--ncf-lr", type=float, default=0.0005, help="NCF's learning rate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/hkrm-gap"))
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    ds = load_dataset("lastfm", layout="raw", data_dir=args.data_dir)
    split = make_split(ds, "ratio", (0.6, 0.2, 0.2), args.seed)
    tr, va, te = split.train, split.valid, split.test
    checks = protocol_checks(ds, split)
    print("| protocol check | value |\n|---|---|")
    for key, value in checks.items():
        if isinstance(value, dict):
            value = " / ".join(f"{k} {v:.3f}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4f}"
        print(f"| {key} | {value} |")

    pop = np.bincount(tr[tr[:, 2] == 1, 1], minlength=ds.n_items).astype(float)
    cos_va = item_cosine_scores(tr, va, ds.n_users, ds.n_items)
    cos_te = item_cosine_scores(tr, te, ds.n_users, ds.n_items)
    rows = {"popularity (non-learned)": {"valid": auc(va[:, 2], pop[va[:, 1]]),
                                         "test": auc(te[:, 2], pop[te[:, 1]]),
                                         "gauc": gauc(te[:, 2], pop[te[:, 1]], te[:, 0])},
            "item-cosine (non-learned)": {"valid": auc(va[:, 2], cos_va),
                                          "test": auc(te[:, 2], cos_te),
                                          "gauc": gauc(te[:, 2], cos_te, te[:, 0])}}
    common = [*FIXED, f"train.threads={args.threads}", f"seed={args.seed}"]
    hk = [*common, f"train.lr={args.lr}"]
    runs = {"hkrm": ("hkrm-lastfm", hk),
            "hkrm balanced_query": ("hkrm-lastfm", [*hk, "model_args.balanced_query=true"]),
            "hkrm-item": ("hkrm-lastfm", [*hk, "model_args.variant=item"]),
            "hkrm-wokl": ("hkrm-lastfm", [*hk, "model_args.variant=wokl"]),
            "hkrm-shuffled": ("hkrm-lastfm", hk),
            "ncf": ("ncf-lastfm", [*common, f"train.lr={args.ncf_lr}"])}
    test_scores = {}
    for name, (preset, sets) in runs.items():
        res = train_run(name.replace(" ", "-"), preset, sets, args.out, args.data_dir)
        s = ctr_scores(res.model, te)
        test_scores[name] = s
        row = {"valid": res.metrics["valid"]["auc"], "test": res.metrics["test"]["auc"],
               "gauc": gauc(te[:, 2], s, te[:, 0]), "acc": res.metrics["test"]["acc"],
               "best_epoch": res.metrics.get("best_epoch")}
        if name in ("hkrm", "hkrm-item"):
            row["other_query"] = read_other_query(res.model, te, same_size=False)
            row["same_size_query"] = read_other_query(res.model, te, same_size=True)
        rows[name] = row
    print("\n| score | valid AUC | test AUC | test GAUC | test ACC | best epoch "
          "| test AUC, another user's query (any / same size) |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        other = (f"{r['other_query']:.4f} / {r['same_size_query']:.4f}"
                 if "other_query" in r else "-")
        acc = f"{r['acc']:.4f}" if "acc" in r else "-"
        print(f"| {name} | {r['valid']:.4f} | {r['test']:.4f} | {r['gauc']:.4f} | {acc} | "
              f"{r.get('best_epoch', '-')} | {other} |")

    target_pos = pop[te[:, 1]]
    qsize = np.bincount(tr[tr[:, 2] == 1, 0], minlength=ds.n_users)[te[:, 0]]
    buckets = {"target: 0 training positives": target_pos == 0,
               "target: >= 1": target_pos >= 1, "target: >= 5": target_pos >= 5}
    for lo, hi in ((0, 4), (4, 8), (8, 12), (12, 10**6)):
        buckets[f"user: {lo}-{hi - 1 if hi < 10**6 else ''} training positives"] = \
            (qsize >= lo) & (qsize < hi)
    shown = ("hkrm", "hkrm-item", "ncf")
    print("\n| test rows | n | positive share | " + " | ".join(shown) + " |\n|---|---|---|"
          + "---|" * len(shown))
    by_bucket = {}
    for title, mask in buckets.items():
        y = te[mask, 2]
        by_bucket[title] = {n: auc(y, test_scores[n][mask]) for n in shown}
        print(f"| {title} | {int(mask.sum())} | {y.mean():.2f} | "
              + " | ".join(f"{by_bucket[title][n]:.4f}" for n in shown) + " |")
    print(f"\nmachine: {machine_description('cpu')}, {time.strftime('%Y-%m-%d')}, "
          f"{time.time() - t0:.0f} s wall")
    print(json.dumps({"checks": checks, "rows": rows, "buckets": by_bucket}))


if __name__ == "__main__":
    main()
