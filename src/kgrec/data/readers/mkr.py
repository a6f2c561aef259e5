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
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset
from kgrec.data.readers.common import iter_fields, read_int_table, require_file, to_float
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
        with p.open(encoding=spec.encoding, newline="") as f:
            reader = csv.reader(f, delimiter=spec.sep, quotechar='"', strict=True)
            try:
                for fields in reader:
                    no = reader.line_num
                    if spec.header and no == 1 or not fields:
                        continue
                    if len(fields) < 3:
                        raise DataError(p, no, f"expected 3 fields, found {len(fields)}: {fields}")
                    rows.append((no, fields[0], fields[1], to_float(p, no, fields[2], "rating")))
            except csv.Error as e:
                raise DataError(p, reader.line_num, f"malformed CSV: {e}") from None
        if not rows:
            raise DataError(p, None, "file has no data lines")
        return rows
    for no, fields in iter_fields(path, sep=spec.sep, n_fields=(3, 4), skip_header=spec.header,
                                  encoding=spec.encoding):
        rows.append((no, fields[0], fields[1], to_float(path, no, fields[2], "rating")))
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
    for no, user, item_old, rating in ratings:
        item = item_old2new.get(item_old)
        if item is None:  # not a linked item
            continue
        try:
            user_key = int(user)
        except ValueError:
            raise DataError(ratings_path, no, f"user id is not an integer: {user!r}") from None
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
    """Read ``ratings_final.txt`` and ``kg_final.txt`` (items are entities ``0..n_items-1``)."""
    folder = Path(folder)
    rpath, kpath = folder / "ratings_final.txt", folder / "kg_final.txt"
    inter = read_int_table(rpath, 3, ("user id", "item id", "label"))
    kg = read_int_table(kpath, 3, ("head id", "relation id", "tail id"))
    bad = np.flatnonzero(~np.isin(inter[:, 2], (0, 1)))
    if len(bad):
        raise DataError(rpath, _line_of(rpath, int(bad[0])), f"label must be 0 or 1, got {inter[bad[0], 2]}")
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
    )


def _line_of(path: Path, row: int) -> int:
    """1-based line number of the ``row``-th non-blank line."""
    for k, (no, _) in enumerate(iter_fields(path, sep=None)):
        if k == row:
            return no
    return row + 1
