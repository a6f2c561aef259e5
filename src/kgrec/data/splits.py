"""Train/validation/test splits of labelled interactions and of KG triples.

All splits are seeded and disjoint by construction (each row goes to exactly one part).
"""

from __future__ import annotations

import numpy as np

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError


def ratio_split(rows: np.ndarray, ratios=(0.6, 0.2, 0.2), seed: int = 0) -> Split:
    """Random split of labelled rows by ``ratios`` (MKR Section 4.3: 6:2:2)."""
    n = len(rows)
    perm = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * ratios[1]))
    n_test = int(round(n * ratios[2]))
    n_train = n - n_valid - n_test
    return Split(
        train=rows[perm[:n_train]],
        valid=rows[perm[n_train : n_train + n_valid]],
        test=rows[perm[n_train + n_valid :]],
    )


def per_user_split(rows: np.ndarray, ratios=(0.7, 0.1, 0.2), seed: int = 0) -> Split:
    """Split each user's rows by ``ratios`` with at least one test row per user.

    KTUP Section 6.3 (7:1:2 per user). Users with a single row keep it for test; the
    remaining rows go to train first, then validation, then test, by rounding.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    rows = rows[order]
    users = rows[:, 0]
    srt = np.argsort(users, kind="stable")
    rows, users = rows[srt], users[srt]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(rows)])
    pos = np.arange(len(rows)) - np.repeat(starts, counts)  # position within the user
    cnt = np.repeat(counts, counts)
    n_test = np.maximum(1, np.round(cnt * ratios[2])).astype(int)
    n_valid = np.minimum(np.round(cnt * ratios[1]).astype(int), cnt - n_test)
    n_train = cnt - n_test - n_valid
    part = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2))
    return Split(train=rows[part == 0], valid=rows[part == 1], test=rows[part == 2])


def subsample_train(split: Split, train_ratio: float, seed: int = 0) -> Split:
    """Keep a random ``train_ratio`` of the training rows, validation and test unchanged
    (MKR Table 3)."""
    if not 0 < train_ratio <= 1:
        raise ConfigError(f"train_ratio must be in (0, 1], got {train_ratio}")
    if train_ratio == 1:
        return split
    n = len(split.train)
    keep = np.sort(np.random.default_rng(seed + 7919).permutation(n)[: int(round(n * train_ratio))])
    return Split(train=split.train[keep], valid=split.valid, test=split.test)


def subsample_triples(triples: np.ndarray, kg_ratio: float, seed: int = 0) -> np.ndarray:
    """A random ``kg_ratio`` of the KG triples (at least one), in their original order (MKR
    Figure 5a, "the size of the KG"; the item-entity alignment is not a triple and is kept)."""
    if not 0 < kg_ratio <= 1:
        raise ConfigError(f"kg_ratio must be in (0, 1], got {kg_ratio}")
    n = len(triples)
    if kg_ratio == 1 or n == 0:
        return triples
    n_keep = max(1, int(round(n * kg_ratio)))
    keep = np.sort(np.random.default_rng(seed + 104729).permutation(n)[:n_keep])
    return triples[keep]


def split_triples(triples: np.ndarray, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Random split of KG triples for completion; entities of valid/test triples that
    never occur in train are moved back to train so every ranked entity was trained."""
    perm = np.random.default_rng(seed).permutation(len(triples))
    n_valid = int(round(len(triples) * ratios[1]))
    n_test = int(round(len(triples) * ratios[2]))
    n_train = len(triples) - n_valid - n_test
    parts = {"train": triples[perm[:n_train]], "valid": triples[perm[n_train:n_train + n_valid]],
             "test": triples[perm[n_train + n_valid:]]}
    seen = np.zeros(int(triples[:, [0, 2]].max()) + 1 if len(triples) else 0, dtype=bool)
    seen[parts["train"][:, 0]] = True
    seen[parts["train"][:, 2]] = True
    seen_r = np.zeros(int(triples[:, 1].max()) + 1 if len(triples) else 0, dtype=bool)
    seen_r[parts["train"][:, 1]] = True
    moved = []
    for name in ("valid", "test"):
        p = parts[name]
        ok = seen[p[:, 0]] & seen[p[:, 2]] & seen_r[p[:, 1]]
        moved.append(p[~ok])
        parts[name] = p[ok]
    parts["train"] = np.concatenate([parts["train"], *moved])
    return parts


def make_split(dataset: KGDataset, how: str, ratios, seed: int, train_ratio: float = 1.0,
               negatives: str = "keep", min_user_positives: int = 0) -> Split:
    """The split a config asks for: ``ratio`` (6:2:2), ``per_user`` (7:1:2) or ``given``.

    ``min_user_positives`` drops the rows of users with fewer positives first (the KTUP
    datasets keep users with enough ratings; a user with one positive would otherwise be
    a test-only, cold-start user under the per-user split).
    """
    rows = dataset.interactions
    if negatives == "drop":
        rows = rows[rows[:, 2] == 1]
    if min_user_positives > 0:
        counts = np.bincount(rows[rows[:, 2] == 1, 0], minlength=dataset.n_users)
        rows = rows[counts[rows[:, 0]] >= min_user_positives]
    if how == "given":
        if dataset.given_split is None:
            raise ConfigError(f"dataset {dataset.name!r} ships no split; use ratio or per_user")
        split = dataset.given_split
    elif how == "ratio":
        split = ratio_split(rows, ratios, seed)
    elif how == "per_user":
        split = per_user_split(rows, ratios, seed)
    else:
        raise ConfigError(f"unknown split {how!r}")
    return subsample_train(split, train_ratio, seed)
