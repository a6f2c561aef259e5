"""Reader for the dataset layout published with KGAT (Wang et al., KDD 2019), which JNSKR
(``shared/papers/003_*``) uses for Amazon-book and Yelp2018.

A KGAT dataset folder holds (ids already remapped to ``0..n-1``, space separated)::

    train.txt, test.txt   user item item ...      one line per user; a user with no item
                                                  is a line with just the user id
    kg_final.txt          head relation tail
    item_list.txt         org_id remap_id freebase_id   (optional, header line)
    entity_list.txt       org_id remap_id               (optional, header line)
    relation_list.txt     org_id remap_id               (optional, header line)
    user_list.txt         org_id remap_id               (optional, header line)

Items are the entities ``0..n_items-1`` (``item_entity = arange(n_items)``). The optional
lists give the original ids (``KGDataset.user_ids`` etc.) and fix the counts; a header line
whose first field is ``org_id`` is skipped. Without a list, a count is the largest id + 1.

Split: ``train.txt`` is the given training part and ``test.txt`` the test part. The layout
ships no validation set and model selection must not look at the test set, so a seeded
share ``valid_ratio`` of every user's training items is moved to validation (at least one
item stays in training; users with a single training item give none). The result is
``KGDataset.given_split``; ``interactions`` holds all three parts, every row a positive.

Readings taken where the layout is loose: duplicate items on a user's line are dropped (the
count is in ``meta["duplicates_removed"]``); a pair of ``test.txt`` that is also in
``train.txt`` is dropped from the test part (counted as ``meta["duplicates_removed"]
["test_in_train"]``), so no pair is both trained on and tested; a user on two lines of the
same file is an error. Ids are bounded by
:func:`~kgrec.data.readers.common.id_limit` of the files' size (pairs + triples, or a list's
lines), so a corrupt id cannot allocate huge tables. Every malformed line (non-integer or
negative id, wrong number of fields, an id beyond a list, a remap id listed twice) and
every missing or empty file raises :class:`~kgrec.errors.DataError` naming the file and
the line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.readers.common import check_ids, id_limit, iter_fields, require_file, to_int
from kgrec.errors import DataError


def _int(path: Path, no: int, value: str, what: str) -> int:
    v = to_int(path, no, value, what)
    if v < 0:
        raise DataError(path, no, f"negative {what} {v}")
    return v


def read_user_items(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """``(pairs (n, 2), line of each pair, duplicates removed)`` of a ``user item ...``
    file; a user listed alone contributes no pair."""
    path = Path(path)
    pairs: list[tuple[int, int]] = []
    lines: list[int] = []
    seen_users: dict[int, int] = {}
    dups = 0
    for no, fields in iter_fields(path, sep=None):
        user = _int(path, no, fields[0], "user id")
        if user in seen_users:
            raise DataError(path, no, f"user {user} already listed on line {seen_users[user]}")
        seen_users[user] = no
        items = [_int(path, no, f, "item id") for f in fields[1:]]
        unique = list(dict.fromkeys(items))
        dups += len(items) - len(unique)
        pairs.extend((user, i) for i in unique)
        lines.extend([no] * len(unique))
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr, np.asarray(lines, dtype=np.int64), dups


def read_kg(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(triples (m, 3), line of each)`` of a ``head relation tail`` file."""
    path = Path(path)
    rows, lines = [], []
    names = ("head entity id", "relation id", "tail entity id")
    for no, fields in iter_fields(path, sep=None, n_fields=3):
        rows.append([_int(path, no, v, names[k]) for k, v in enumerate(fields)])
        lines.append(no)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3), np.asarray(lines, dtype=np.int64)


def read_id_list(path: str | Path, n_fields: tuple[int, ...] = (2,)) -> list[str]:
    """Original ids indexed by remap id from an ``org_id remap_id [...]`` list."""
    path = Path(path)
    names: dict[int, str] = {}
    first = True
    lines: dict[int, int] = {}
    for no, fields in iter_fields(path, sep=None):
        if first and fields[0] == "org_id":
            first = False
            continue
        first = False
        if len(fields) not in n_fields:
            want = " or ".join(map(str, n_fields))
            raise DataError(path, no, f"expected {want} fields, found {len(fields)}")
        idx = _int(path, no, fields[1], "remap id")
        if idx in names:
            raise DataError(path, no, f"remap id {idx} listed twice")
        names[idx] = fields[0]
        lines[idx] = no
    if not names:
        raise DataError(path, None, "file has no data lines")
    top, limit = max(names), id_limit(len(names))
    if top >= limit:
        raise DataError(path, lines[top], f"remap id {top} is too large for a list of "
                                          f"{len(names)} lines (ids must be below {limit:,})")
    out = [""] * (top + 1)
    for idx, org in names.items():
        out[idx] = org
    return out


def _count(values: list[tuple[np.ndarray, np.ndarray, Path]], listed: list[str] | None,
           list_path: Path, what: str, at_least: int = 0) -> int:
    """Number of ids: the list's length when there is one (ids beyond it are errors),
    else the largest id + 1."""
    top = at_least
    for ids, lines, path in values:
        if len(ids) == 0:
            continue
        if listed is not None and ids.max() >= len(listed):
            k = int(np.argmax(ids >= len(listed)))
            raise DataError(path, int(lines[k]),
                            f"{what} {int(ids[k])} is not in {list_path.name} "
                            f"({len(listed)} ids)")
        top = max(top, int(ids.max()) + 1)
    return len(listed) if listed is not None else top


def carve_validation(train: np.ndarray, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Move a seeded ``ratio`` of each user's training pairs to validation (rounded half
    up, at most all but one). Returns ``(train, valid)`` pairs. The result depends on the
    set of pairs and the seed, not on their order."""
    if not 0 <= ratio < 1:
        raise ValueError(f"valid_ratio must be in [0, 1), got {ratio}")
    rng = np.random.default_rng(seed)
    train = train[np.lexsort((train[:, 1], train[:, 0]))]
    rows = train[rng.permutation(len(train))]
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    users = rows[:, 0]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(rows) else \
        np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(rows)])
    pos = np.arange(len(rows)) - np.repeat(starts, counts)
    cnt = np.repeat(counts, counts)
    n_valid = np.minimum(np.floor(cnt * ratio + 0.5), cnt - 1).astype(np.int64)
    is_valid = pos < n_valid
    return rows[~is_valid], rows[is_valid]


def _labelled(pairs: np.ndarray) -> np.ndarray:
    """``(user, item)`` pairs as ``(user, item, 1)`` rows."""
    return np.c_[pairs, np.ones(len(pairs), dtype=np.int64)].reshape(-1, 3)


def reseed_validation(dataset: KGDataset, seed: int) -> KGDataset:
    """``dataset`` (KGAT layout) with its validation pairs carved again from the training
    pairs with ``seed`` (the run's seed), so that seeds vary the validation set as they do
    for the other layouts; the test file's pairs are untouched."""
    if dataset.meta.get("valid_seed") == seed or dataset.given_split is None:
        return dataset
    sp = dataset.given_split
    pool = np.concatenate([sp.train, sp.valid])[:, :2]
    train, valid = carve_validation(pool, dataset.meta.get("valid_ratio", 0.1), seed)
    given = Split(train=_labelled(train), valid=_labelled(valid), test=sp.test)
    return replace(dataset, given_split=given, meta={**dataset.meta, "valid_seed": seed})


def load_kgat(folder: str | Path, name: str, valid_ratio: float = 0.1,
              seed: int = 0) -> KGDataset:
    """Read a KGAT-layout folder into a :class:`KGDataset` with ``given_split`` set."""
    folder = Path(folder)
    paths = {k: folder / f"{k}.txt" for k in ("train", "test", "kg_final")}
    for p in paths.values():
        require_file(p)
    train, train_lines, d1 = read_user_items(paths["train"])
    test, test_lines, d2 = read_user_items(paths["test"])
    triples, kg_lines = read_kg(paths["kg_final"])
    limit = id_limit(len(train) + len(test) + len(triples))
    for ids, lines, path, what in ((train[:, 0], train_lines, paths["train"], "user id"),
                                   (train[:, 1], train_lines, paths["train"], "item id"),
                                   (test[:, 0], test_lines, paths["test"], "user id"),
                                   (test[:, 1], test_lines, paths["test"], "item id"),
                                   (triples[:, 0], kg_lines, paths["kg_final"], "head entity id"),
                                   (triples[:, 1], kg_lines, paths["kg_final"], "relation id"),
                                   (triples[:, 2], kg_lines, paths["kg_final"], "tail entity id")):
        check_ids(path, ids, lines, limit, what)
    in_train = np.isin(test[:, 0] * limit + test[:, 1], train[:, 0] * limit + train[:, 1])
    test, test_lines = test[~in_train], test_lines[~in_train]

    lists: dict[str, list[str] | None] = {}
    for key, fname, n_fields in (("user", "user_list.txt", (2,)),
                                 ("item", "item_list.txt", (2, 3)),
                                 ("entity", "entity_list.txt", (2,)),
                                 ("relation", "relation_list.txt", (2,))):
        p = folder / fname
        lists[key] = read_id_list(p, n_fields) if p.exists() else None

    inter = [(train[:, 0], train_lines, paths["train"]), (test[:, 0], test_lines, paths["test"])]
    n_users = _count(inter, lists["user"], folder / "user_list.txt", "user id")
    inter = [(train[:, 1], train_lines, paths["train"]), (test[:, 1], test_lines, paths["test"])]
    n_items = _count(inter, lists["item"], folder / "item_list.txt", "item id")
    ents = [(triples[:, 0], kg_lines, paths["kg_final"]),
            (triples[:, 2], kg_lines, paths["kg_final"])]
    n_entities = _count(ents, lists["entity"], folder / "entity_list.txt", "entity id",
                        at_least=n_items)
    if n_entities < n_items:
        raise DataError(folder / "entity_list.txt", None,
                        f"{n_entities} entities for {n_items} items (items are entities)")
    n_relations = _count([(triples[:, 1], kg_lines, paths["kg_final"])], lists["relation"],
                         folder / "relation_list.txt", "relation id")

    train, valid = carve_validation(train, valid_ratio, seed)

    parts = Split(train=_labelled(train), valid=_labelled(valid), test=_labelled(test))
    return KGDataset(
        name=name,
        interactions=np.concatenate([parts.train, parts.valid, parts.test]),
        triples=triples,
        item_entity=np.arange(n_items, dtype=np.int64),
        n_users=n_users, n_items=n_items, n_entities=n_entities, n_relations=n_relations,
        user_ids=lists["user"], item_ids=lists["item"], entity_ids=lists["entity"],
        relation_names=lists["relation"], given_split=parts,
        meta={"layout": "kgat", "valid_ratio": valid_ratio, "valid_seed": seed,
              "duplicates_removed": {"train": d1, "test": d2,
                                     "test_in_train": int(in_train.sum())}},
    )
