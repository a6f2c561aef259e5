"""Readers for the MKR raw layout and the processed (``ratings_final`` / ``kg_final``) layout.

Raw layout (MKR/RippleNet releases): a ratings file (ML-1M ``ratings.dat`` with ``::`` and
no header, Last.FM ``user_artists.dat`` with a header, Book-Crossing ``BX-Book-Ratings.csv``
with ``;``, quotes and a header), ``item_index2entity_id.txt`` and ``kg.txt``.

:func:`preprocess_mkr` applies MKR's preprocessing: a rating at or above the threshold is a
positive; each user gets as many negatives as positives, drawn without replacement from the
linked items they neither liked nor disliked (legacy NumPy ``RandomState(seed)``, as the
original script); a KG triple is kept when its head is a linked item; ids are remapped in
order of first appearance. The original script skipped the first line of every ratings
file, including headerless ``ratings.dat``; here only files with a header skip it. With
seed 555 the Last.FM output is identical to the published ``ratings_final.txt``.

Checks and counted policies (nothing is dropped without a count):
- ratings must be finite and non-negative (a NaN, infinite or negative listening count or
  rating is an error with its file and line);
- rating rows whose item is not in ``item_index2entity_id.txt`` (an unknown artist or
  movie id, or any other string) are skipped, as MKR does, and counted in
  ``meta["skipped"]`` (``unlinked_rating_rows`` and ``unlinked_items``; shown by
  ``kgrec datasets info``);
- in ``ratings_final.txt`` an exact duplicate row is dropped (first line kept; counted in
  ``meta["duplicates_removed"]``), so a pair can never land in two parts of a split; the
  same pair labelled both 1 and 0 is an error naming both lines; duplicate rows of
  ``kg_final.txt`` are dropped and counted the same way;
- remapped ids are bounded by :func:`~kgrec.data.readers.common.id_limit` of the files'
  line count, so a corrupt id cannot allocate huge tables.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset
from kgrec.data.readers.common import (
    check_ids,
    id_limit,
    iter_fields,
    open_text,
    read_int_rows,
    require_file,
    to_float,
    to_int,
)
from kgrec.errors import DataError
from kgrec.logs import progress


@dataclass(frozen=True)
class RatingFormat:
    sep: str
    header: bool
    quoted: bool = False
    encoding: str = "utf-8"


RATING_FORMATS = {
    "movielens": RatingFormat(sep="::", header=False),
    "lastfm": RatingFormat(sep="\t", header=True),
    "bookcrossing": RatingFormat(sep=";", header=True, quoted=True, encoding="latin-1"),
}


def read_ratings(path: str | Path, fmt: str) -> list[tuple[int, str, str, float]]:
    """Rows ``(line, user, item, rating)`` of a raw ratings file in format ``fmt``."""
    spec = RATING_FORMATS[fmt]
    rows: list[tuple[int, str, str, float]] = []
    if spec.quoted:
        p = require_file(path)
        with open_text(p, spec.encoding) as f:
            reader = csv.reader(f, delimiter=spec.sep, quotechar='"', strict=True)
            try:
                for fields in reader:
                    no = reader.line_num
                    if spec.header and no == 1 or not fields:
                        continue
                    if len(fields) < 3:
                        raise DataError(p, no, f"expected 3 fields, found {len(fields)}: {fields}")
                    rows.append((no, fields[0], fields[1],
                                 to_float(p, no, fields[2], "rating", non_negative=True)))
            except csv.Error as e:
                raise DataError(p, reader.line_num, f"malformed CSV: {e}") from None
            except UnicodeDecodeError as e:
                raise DataError(p, reader.line_num + 1, f"cannot decode as {spec.encoding}: {e}") from None
        if not rows:
            raise DataError(p, None, "file has no data lines")
        return rows
    for no, fields in iter_fields(path, sep=spec.sep, n_fields=(3, 4), skip_header=spec.header,
                                  encoding=spec.encoding):
        rows.append((no, fields[0], fields[1],
                     to_float(path, no, fields[2], "rating", non_negative=True)))
    return rows


def read_item_index(path: str | Path) -> list[tuple[str, str]]:
    """``(original_item_id, kg_entity_id)`` pairs; line order is MKR's item index."""
    pairs, seen_items, seen_entities = [], set(), set()
    for no, (item, entity) in iter_fields(path, n_fields=2):
        if item in seen_items:
            raise DataError(path, no, f"item {item!r} listed twice")
        if entity in seen_entities:
            raise DataError(path, no, f"entity {entity!r} aligned with two items")
        seen_items.add(item)
        seen_entities.add(entity)
        pairs.append((item, entity))
    return pairs


def preprocess_mkr(
    name: str,
    ratings: list[tuple[int, str, str, float]],
    item_index: list[tuple[str, str]],
    kg_path: str | Path,
    threshold: float,
    seed: int = 555,
    ratings_path: str | Path | None = None,
) -> KGDataset:
    """MKR preprocessing of raw ratings and KG into a :class:`KGDataset` (see module doc)."""
    item_old2new = {item: k for k, (item, _) in enumerate(item_index)}
    entity_index = {entity: k for k, (_, entity) in enumerate(item_index)}
    item_set = set(item_old2new.values())
    user_pos: dict[str, set[int]] = {}
    user_neg: dict[str, set[int]] = {}
    unlinked_rows, unlinked_items = 0, set()
    for no, user, item_old, rating in ratings:
        item = item_old2new.get(item_old)
        if item is None:  # not a linked item: skipped as MKR does, and counted
            unlinked_rows += 1
            unlinked_items.add(item_old)
            continue
        if not math.isfinite(rating) or rating < 0:
            raise DataError(ratings_path, no, f"rating must be a finite number >= 0, got {rating}")
        user_key = to_int(ratings_path or "<ratings>", no, user, "user id")
        target = user_pos if rating >= threshold else user_neg
        target.setdefault(user_key, set()).add(item)
    if not user_pos:
        raise DataError(ratings_path, None, "no positive rating of a linked item")

    rs = np.random.RandomState(seed)
    rows: list[np.ndarray] = []
    user_ids: list[str] = []
    users = progress(enumerate(user_pos.items()), len(user_pos), f"{name}: negatives", "users")
    for new_user, (user_old, pos) in users:
        user_ids.append(str(user_old))
        pos_items = np.fromiter(pos, dtype=np.int64, count=len(pos))
        unwatched = item_set - pos
        if user_old in user_neg:
            unwatched -= user_neg[user_old]
        if len(unwatched) < len(pos):
            raise DataError(ratings_path, None,
                            f"user {user_old} has too few unwatched items to sample negatives")
        neg_items = rs.choice(list(unwatched), size=len(pos), replace=False).astype(np.int64)
        block = np.empty((2 * len(pos), 3), dtype=np.int64)
        block[:, 0] = new_user
        block[:, 1] = np.concatenate([pos_items, neg_items])
        block[:, 2] = np.r_[np.ones(len(pos), np.int64), np.zeros(len(pos), np.int64)]
        rows.append(block)

    entity_ids = [entity for _, entity in item_index]
    relation_index: dict[str, int] = {}
    triples = []
    n_items = len(item_index)
    for _, (head, relation, tail) in iter_fields(kg_path, n_fields=3):
        h = entity_index.get(head)
        if h is None or h >= n_items:  # keep triples whose head is a linked item
            continue
        t = entity_index.get(tail)
        if t is None:
            t = entity_index[tail] = len(entity_ids)
            entity_ids.append(tail)
        r = relation_index.setdefault(relation, len(relation_index))
        triples.append((h, r, t))
    if not triples:
        raise DataError(kg_path, None, "no triple has a linked item as head")
    return KGDataset(
        name=name,
        interactions=np.concatenate(rows),
        triples=np.asarray(triples, dtype=np.int64),
        item_entity=np.arange(n_items, dtype=np.int64),
        n_users=len(user_ids),
        n_items=n_items,
        n_entities=len(entity_ids),
        n_relations=len(relation_index),
        user_ids=user_ids,
        item_ids=[item for item, _ in item_index],
        entity_ids=entity_ids,
        relation_names=list(relation_index),
        meta={"skipped": {"unlinked_rating_rows": unlinked_rows,
                          "unlinked_items": len(unlinked_items)}},
    )


def load_raw(folder: str | Path, name: str, ratings_file: str, fmt: str, threshold: float,
             seed: int = 555) -> KGDataset:
    """Read and preprocess the MKR raw layout in ``folder``."""
    folder = Path(folder)
    rpath = folder / ratings_file
    ratings = read_ratings(rpath, fmt)
    items = read_item_index(folder / "item_index2entity_id.txt")
    return preprocess_mkr(name, ratings, items, folder / "kg.txt", threshold, seed, rpath)


def load_processed(folder: str | Path, name: str) -> KGDataset:
    """Read ``ratings_final.txt`` and ``kg_final.txt`` (items are entities ``0..n_items-1``).

    Duplicate rows are dropped and counted, a pair labelled both 1 and 0 is an error, and
    ids are bounded by the files' line count (see the module doc)."""
    folder = Path(folder)
    rpath, kpath = folder / "ratings_final.txt", folder / "kg_final.txt"
    rnames, knames = ("user id", "item id", "label"), ("head id", "relation id", "tail id")
    inter, rlines = read_int_rows(rpath, 3, rnames)
    kg, klines = read_int_rows(kpath, 3, knames)
    limit = id_limit(len(inter) + len(kg))
    for k in range(2):
        check_ids(rpath, inter[:, k], rlines, limit, rnames[k])
    for k in range(3):
        check_ids(kpath, kg[:, k], klines, limit, knames[k])
    bad = np.flatnonzero(~np.isin(inter[:, 2], (0, 1)))
    if len(bad):
        raise DataError(rpath, int(rlines[bad[0]]), f"label must be 0 or 1, got {inter[bad[0], 2]}")
    inter, n_dup = _drop_duplicate_pairs(rpath, inter, rlines, limit)
    kg_keep = _first_rows(kg)
    n_kg_dup = len(kg) - len(kg_keep)
    kg = kg[kg_keep]
    n_items = int(inter[:, 1].max()) + 1
    n_entities = max(int(kg[:, [0, 2]].max()) + 1, n_items)
    return KGDataset(
        name=name,
        interactions=inter,
        triples=kg,
        item_entity=np.arange(n_items, dtype=np.int64),
        n_users=int(inter[:, 0].max()) + 1,
        n_items=n_items,
        n_entities=n_entities,
        n_relations=int(kg[:, 1].max()) + 1,
        meta={"duplicates_removed": {"ratings": n_dup, "triples": n_kg_dup}},
    )


def _first_rows(rows: np.ndarray) -> np.ndarray:
    """Indices (in file order) of the first occurrence of each distinct row."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(rows, axis=0, return_index=True)
    return np.sort(first)


def _drop_duplicate_pairs(path: Path, inter: np.ndarray, lines: np.ndarray,
                          base: int) -> tuple[np.ndarray, int]:
    """Drop repeated ``(user, item, label)`` rows; a pair with both labels is an error."""
    pair = inter[:, 0] * base + inter[:, 1]
    order = np.argsort(pair, kind="stable")
    ps, labels = pair[order], inter[order, 2]
    same = ps[1:] == ps[:-1]
    clash = np.flatnonzero(same & (labels[1:] != labels[:-1]))
    if len(clash):
        a, b = sorted((int(order[clash[0]]), int(order[clash[0] + 1])))
        raise DataError(path, int(lines[b]),
                        f"user {inter[b, 0]} item {inter[b, 1]} is labelled {inter[b, 2]} here "
                        f"and {inter[a, 2]} on line {int(lines[a])}")
    keep = _first_rows(inter)
    return inter[keep], len(inter) - len(keep)
