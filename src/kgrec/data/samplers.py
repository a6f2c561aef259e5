"""Mini-batch samplers, one kind per training task.

A sampler holds its data as tensors and yields dictionaries of tensors, vectorised: an
epoch is a permutation sliced into batches, and negatives are drawn for a whole batch at
once. Every pass is seeded explicitly (``epoch(seed)``), so a resumed run replays exactly
the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError

SAMPLERS: dict[str, type[Sampler]] = {}


def register_sampler(name: str):
    def deco(cls):
        SAMPLERS[name] = cls
        return cls

    return deco


def sampler_options(kind: str) -> list[str]:
    """The options sampler ``kind`` takes (``train.sampler_options.TASK``): the keyword
    parameters of its ``from_data`` after ``dataset, split, batch_size``."""
    cls = SAMPLERS[kind]
    params = list(inspect.signature(cls.from_data).parameters.values())[3:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def make_sampler(kind: str, dataset: KGDataset, split: Split, batch_size: int, **opts: Any):
    """Sampler ``kind`` on the training data; an option it does not take is a
    :class:`ConfigError` (never silently ignored)."""
    try:
        cls = SAMPLERS[kind]
    except KeyError:
        raise ConfigError(f"unknown sampler {kind!r}; known: {', '.join(sorted(SAMPLERS))}") from None
    known = sampler_options(kind)
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ConfigError(f"train.sampler_options: the {kind!r} sampler has no option "
                          f"{', '.join(map(repr, unknown))} (its options: {', '.join(known) or 'none'})")
    try:
        return cls.from_data(dataset, split, batch_size, **opts)
    except TypeError as e:
        raise ConfigError(f"train.sampler_options for the {kind!r} sampler: {e}") from None


class PairSet:
    """Membership test for integer pairs ``(a, b)``, ``0 <= b < n_b``: a lookup in a dense
    bool table of every key when it has at most ``dense_limit`` entries (users x items of
    MovieLens-1m: 20 M; one memory access per query instead of a binary search's ~20,
    about 5x faster BPR negatives), else a binary search on the sorted keys."""

    def __init__(self, a: np.ndarray, b: np.ndarray, n_b: int, dense_limit: int = 1 << 26) -> None:
        self.n_b = int(n_b)
        self.keys = np.unique(np.asarray(a, np.int64) * self.n_b + np.asarray(b, np.int64))
        size = int(self.keys[-1]) + 1 if len(self.keys) else 0
        self.table: np.ndarray | None = None
        if 0 < size <= dense_limit and self.keys[0] >= 0:
            self.table = np.zeros(size, dtype=bool)
            self.table[self.keys] = True

    def contains(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        q = np.asarray(a, np.int64) * self.n_b + np.asarray(b, np.int64)
        if len(self.keys) == 0:
            return np.zeros(q.shape, dtype=bool)
        if self.table is not None:
            inside = (q >= 0) & (q < len(self.table))
            return np.where(inside, self.table[np.where(inside, q, 0)], False)
        pos = np.searchsorted(self.keys, q).clip(max=len(self.keys) - 1)
        return self.keys[pos] == q


def sample_excluding(
    rng: np.random.Generator, a: np.ndarray, n: int, exclude: PairSet | None, max_tries: int = 50
) -> np.ndarray:
    """For each ``a[k]`` draw ``b`` uniformly from ``[0, n)`` with ``(a[k], b)`` not in ``exclude``."""
    b = rng.integers(0, n, size=len(a))
    if exclude is None:
        return b
    for _ in range(max_tries):
        bad = np.flatnonzero(exclude.contains(a, b))
        if len(bad) == 0:
            break
        b[bad] = rng.integers(0, n, size=len(bad))
    return b


class Sampler:
    """Shuffles ``self.data`` (equal-length tensors) each pass and yields slices of it."""

    def __init__(self, data: dict[str, Tensor], batch_size: int, shuffle: bool = True) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        sizes = {len(v) for v in data.values()}
        if len(sizes) != 1:
            raise ValueError("sampler tensors must have equal length")
        self.data = data
        self.n = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def extra(self, batch: dict[str, Tensor], rng: np.random.Generator) -> dict[str, Tensor]:
        """Hook adding sampled fields (negatives) to a batch."""
        return batch

    def examples(self, batch: dict[str, Tensor]) -> int:
        """Training examples in ``batch`` (``train.max_examples`` counts these): its rows."""
        return len(next(v for v in batch.values() if torch.is_tensor(v)))

    def shard(self, batch: dict[str, Tensor], rank: int, world: int) -> tuple[dict[str, Tensor], float]:
        """Rank ``rank``'s part of a global ``batch`` for a distributed step, and its share
        of the batch's rows.

        Every rank draws the same global batch (same per-epoch seed, negatives included)
        and keeps a contiguous slice of its rows, so the ranks' parts at a step are exactly
        the batch one process would train on at that step.
        """
        sizes = {len(v) for v in batch.values() if torch.is_tensor(v)}
        if len(sizes) > 1:
            raise ConfigError(f"{type(self).__name__} yields fields of different lengths; "
                              "distributed training needs its own shard() method")
        n = sizes.pop() if sizes else 0
        q, m = divmod(n, world)
        start = rank * q + min(rank, m)
        stop = start + q + (rank < m)
        part = {k: v[start:stop] if torch.is_tensor(v) else v for k, v in batch.items()}
        return part, (stop - start) / n if n else 0.0

    def epoch(self, seed: int) -> Iterator[dict[str, Tensor]]:
        rng = np.random.default_rng(seed)
        order = torch.from_numpy(rng.permutation(self.n)) if self.shuffle else None
        shuffled = {k: (v[order] if order is not None else v) for k, v in self.data.items()}
        for start in range(0, self.n, self.batch_size):
            batch = {k: v[start : start + self.batch_size] for k, v in shuffled.items()}
            yield self.extra(batch, rng)


def shard_groups(batch: dict[str, Tensor], groups: list[tuple[str, str, list[str]]], rank: int,
                 world: int) -> tuple[dict[str, Tensor], float]:
    """:meth:`Sampler.shard` of a batch of rows with members: for each ``(key, index,
    fields)`` the rows ``batch[key]`` are sliced contiguously and their members (entries
    of ``fields`` whose ``batch[index]`` is the row's position) follow their row, with
    ``index`` renumbered into the slice. The share counts rows of every group."""
    out: dict[str, Tensor] = {}
    rows = total = 0
    for key, index, fields in groups:
        n = len(batch[key])
        q, m = divmod(n, world)
        start = rank * q + min(rank, m)
        stop = start + q + (rank < m)
        idx = batch[index]
        sel = (idx >= start) & (idx < stop)
        out[key] = batch[key][start:stop]
        out[index] = idx[sel] - start
        out.update({f: batch[f][sel] for f in fields})
        rows, total = rows + stop - start, total + n
    return out, rows / total if total else 0.0


@register_sampler("ctr")
class CTRSampler(Sampler):
    """Labelled ``(user, item, label)`` rows of the training split (MKR Algorithm 1, line 4)."""

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int, **_: Any):
        t = torch.from_numpy(split.train)
        return cls({"users": t[:, 0], "items": t[:, 1], "labels": t[:, 2].float()}, batch_size)


#: readings of the BPR sampler's ``exclude`` option: the items a user's negatives avoid
BPR_EXCLUDE = ("train", "all_splits")


@register_sampler("bpr")
class BPRSampler(Sampler):
    """Training positives with one uniformly drawn unobserved item each: ``(u, i+, i-)``.

    ``exclude`` (``train.sampler_options.rec.exclude``) says which of the user's items a
    negative is redrawn away from:

    * ``"train"`` (default, honest): the user's training positives only; validation and
      test items can be drawn as negatives, as any item the model has not been shown.
    * ``"all_splits"``: the user's train, validation **and test** positives, the KTUP
      authors' reading (``jTransUP/utils/data.py getNegRatings`` with
      ``filter_wrong_corrupted``, default true in ``models/base.py``). This is a test-set
      leak: held-out items are never pushed down, which raises test recall. Reported only
      as "authors' sampler", never as the main figure. (Their sampler also keeps a batch's
      negatives distinct; this one does not.)
    """

    def __init__(self, data, batch_size, n_items: int, exclude: PairSet) -> None:
        super().__init__(data, batch_size)
        self.n_items = n_items
        self.exclude = exclude

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int, exclude: str = "train",
                  **_: Any):
        if exclude not in BPR_EXCLUDE:
            raise ConfigError(f"train.sampler_options.rec.exclude must be one of "
                              f"{', '.join(BPR_EXCLUDE)}, got {exclude!r}")
        pos = split.train[split.train[:, 2] == 1]
        data = {"users": torch.from_numpy(pos[:, 0]), "pos_items": torch.from_numpy(pos[:, 1])}
        avoid = pos
        if exclude == "all_splits":  # the authors' reading: a test-set leak (see above)
            avoid = np.concatenate([p[p[:, 2] == 1] for p in (split.train, split.valid, split.test)])
        return cls(data, batch_size, dataset.n_items,
                   PairSet(avoid[:, 0], avoid[:, 1], dataset.n_items))

    def extra(self, batch, rng):
        neg = sample_excluding(rng, batch["users"].numpy(), self.n_items, self.exclude)
        return {**batch, "neg_items": torch.from_numpy(neg)}


@register_sampler("triples")
class TripleSampler(Sampler):
    """KG triples with a corrupted head and tail each (uniform, optionally avoiding true triples).

    ``corrupt_heads`` / ``corrupt_tails`` fields are drawn per batch; with
    ``filter_true=True`` a corruption that is itself a training triple is redrawn.
    ``filter_true="all_splits"`` redraws corruptions that are training, validation **or
    test** triples: the KTUP authors' reading (``jTransUP/utils/data.py``
    ``corrupt_head_filter``/``corrupt_tail_filter`` with ``filter_wrong_corrupted``,
    default true), a test-set leak: a held-out triple's answer is never pushed away from
    its query, which raises filtered test Hits@10. Reported only as "authors' sampler".
    ``corrupt_sides`` ("both", "tails", "none") says which are drawn (MKR uses tails only).
    """

    def __init__(self, data, batch_size, n_entities: int, n_relations: int, filter_true: bool,
                 known: np.ndarray, corrupt_sides: str = "both") -> None:
        super().__init__(data, batch_size)
        if corrupt_sides not in ("both", "tails", "none"):
            raise ConfigError(f"corrupt_sides must be both, tails or none, got {corrupt_sides!r}")
        self.corrupt_sides = corrupt_sides
        self.n_entities = n_entities
        self.n_relations = n_relations
        self.hr = self.rt = None
        if filter_true:
            h, r, t = known[:, 0], known[:, 1], known[:, 2]
            self.hr = PairSet(h * n_relations + r, t, n_entities)  # (h, r) -> t
            self.rt = PairSet(t * n_relations + r, h, n_entities)  # (t, r) -> h

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int,
                  filter_true: bool | str = False, corrupt_sides: str = "both", **_: Any):
        if filter_true not in (True, False, "all_splits"):
            raise ConfigError("train.sampler_options.kg.filter_true must be true, false or "
                              f"all_splits, got {filter_true!r}")
        triples = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
        t = torch.from_numpy(triples)
        data = {"heads": t[:, 0], "relations": t[:, 1], "tails": t[:, 2]}
        known = triples
        if filter_true == "all_splits" and dataset.kg_split:  # the authors' leak (see above)
            known = np.concatenate(list(dataset.kg_split.values()))
        return cls(data, batch_size, dataset.n_entities, dataset.n_relations, bool(filter_true),
                   known, corrupt_sides)

    def extra(self, batch, rng):
        if self.corrupt_sides == "none":
            return batch
        h, r, t = (batch[k].numpy() for k in ("heads", "relations", "tails"))
        if self.hr is None:  # unfiltered: a uniform draw, no keys needed
            nt = rng.integers(0, self.n_entities, size=len(h))
        else:
            nt = sample_excluding(rng, h * self.n_relations + r, self.n_entities, self.hr)
        if self.corrupt_sides == "tails":
            return {**batch, "corrupt_tails": torch.from_numpy(nt)}
        nh = sample_excluding(rng, t * self.n_relations + r, self.n_entities, self.rt)
        return {**batch, "corrupt_tails": torch.from_numpy(nt), "corrupt_heads": torch.from_numpy(nh)}
