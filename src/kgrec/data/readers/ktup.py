"""Reader for the dataset layout published with KTUP (Cao et al., WWW 2019).

A KTUP dataset folder holds::

    train.dat, valid.dat, test.dat   user<TAB>item<TAB>rating      (mapped ids, all positives)
    u_map.dat, i_map.dat             mapped_id<TAB>original_id
    i2kg_map.tsv                     original_item_id<TAB>title<TAB>entity_uri   (CRLF)
    kg/train.dat, valid.dat, test.dat  head<TAB>tail<TAB>relation  (tail BEFORE relation)
    kg/e_map.dat, kg/r_map.dat       mapped_id<TAB>uri

The splits are used as given (``KGDataset.given_split`` and ``KGDataset.kg_split``).
Items align with entities through original item id -> uri -> entity id; an item with no
line in ``i2kg_map.tsv``, or whose uri is not in ``e_map.dat``, gets ``-1``. Lines of
``i2kg_map.tsv`` about items absent from ``i_map.dat`` are ignored (the file lists more
items than the ratings use). Two items may align with the same entity (the authors' code
keeps only the last such item; here both keep it).

Readings taken where the layout is loose:
- every rating row is a positive (label 1) whatever its rating value, as in the
  authors' loader (Section 6.1: "we treat existing ratings as positive interactions");
- duplicate rows are removed within each part, and the parts are made disjoint with
  the earlier part winning (train, then valid, then test), for interactions and for
  triples alike; the counts removed are kept in ``meta["duplicates_removed"]``;
- when the same item appears on several lines of ``i2kg_map.tsv`` the last line wins
  (the authors' dictionary does the same); a title containing tabs is accepted (the
  first field is the item, the last the uri);
- mapped ids need not be contiguous: the number of users (items, entities, relations)
  is the largest mapped id + 1, and ids without a line get an empty original id; a
  mapped id at or above :func:`~kgrec.data.readers.common.id_limit` of the map's line
  count is an error (it would allocate a table for ids that cannot exist);
- ratings are only checked to be finite numbers (they are not used).

Every malformed line, unknown id, and missing or empty file raises
:class:`~kgrec.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.readers.common import id_limit, iter_fields, require_file, to_float, to_int
from kgrec.errors import DataError

PARTS = ("train", "valid", "test")


def _read_map(path: Path, what: str) -> list[str]:
    """Read ``mapped_id<TAB>original`` lines into a list indexed by mapped id."""
    names: dict[int, str] = {}
    lines: dict[int, int] = {}
    for no, fields in iter_fields(path, sep="\t", n_fields=2):
        idx = to_int(path, no, fields[0].strip(), f"mapped {what} id")
        if idx < 0:
            raise DataError(path, no, f"negative mapped {what} id {idx}")
        lines[idx] = no
        if idx in names:
            raise DataError(path, no, f"mapped {what} id {idx} listed twice")
        original = fields[1].strip()
        if not original:
            raise DataError(path, no, f"empty original {what} id")
        names[idx] = original
    top, limit = max(names), id_limit(len(names))
    if top >= limit:
        raise DataError(path, lines[top], f"mapped {what} id {top} is too large for a map of "
                                          f"{len(names)} lines (ids must be below {limit:,})")
    out = [""] * (top + 1)
    for idx, original in names.items():
        out[idx] = original
    return out


def _read_rows(path: Path, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read tab-separated rows; ``kinds`` names each field (``"float:..."`` for a number
    that is only checked). Returns the integer columns ``(n, k)`` and the line numbers."""
    rows, lines = [], []
    int_cols = [k for k, kind in enumerate(kinds) if not kind.startswith("float:")]
    for no, fields in iter_fields(path, sep="\t", n_fields=len(kinds)):
        row = []
        for k, kind in enumerate(kinds):
            value = fields[k].strip()
            if kind.startswith("float:"):
                to_float(path, no, value, kind[6:])
            else:
                v = to_int(path, no, value, kind)
                if v < 0:
                    raise DataError(path, no, f"negative {kind} {v}")
                row.append(v)
        rows.append(row)
        lines.append(no)
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, len(int_cols))
    return arr, np.asarray(lines, dtype=np.int64)


def _check_known(path: Path, values: np.ndarray, lines: np.ndarray, names: list[str],
                 what: str) -> None:
    """Raise for the first value that is not a mapped id of ``names``."""
    known = np.zeros(len(names), dtype=bool)
    known[[k for k, n in enumerate(names) if n]] = True
    bad = values >= len(names)
    ok = ~bad
    bad[ok] = ~known[values[ok]]
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(path, int(lines[k]), f"unknown {what} id {int(values[k])}")


def _dedupe_parts(parts: dict[str, np.ndarray], base: int) -> tuple[dict[str, np.ndarray],
                                                                     dict[str, int]]:
    """Drop duplicate rows within each part and rows already in an earlier part."""
    seen = np.zeros(0, dtype=np.int64)
    out, removed = {}, {}
    for name in PARTS:
        rows = parts[name]
        key = rows[:, 0] * base + rows[:, 1]
        if rows.shape[1] == 3:
            key = key * base + rows[:, 2]
        _, first = np.unique(key, return_index=True)
        keep = np.zeros(len(rows), dtype=bool)
        keep[np.sort(first)] = True
        keep &= ~np.isin(key, seen)
        out[name] = rows[keep]
        removed[name] = int(len(rows) - keep.sum())
        seen = np.union1d(seen, key[keep])
    return out, removed


def _read_i2kg(path: Path) -> dict[str, str]:
    """``original item id -> entity uri`` from ``i2kg_map.tsv`` (CRLF accepted)."""
    out: dict[str, str] = {}
    for no, fields in iter_fields(path, sep="\t"):
        if len(fields) < 3:
            raise DataError(path, no, f"expected 3 fields (item, title, uri), found "
                                      f"{len(fields)}: {chr(9).join(fields)!r}")
        item, uri = fields[0].strip(), fields[-1].strip()
        if not item or not uri:
            raise DataError(path, no, "empty item id or entity uri")
        out[item] = uri
    return out


def load_ktup(folder: str | Path, name: str | None = None) -> KGDataset:
    """Load a dataset in the KTUP layout with its given rating and KG splits."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, "dataset folder not found")
    kg = folder / "kg"
    users = _read_map(folder / "u_map.dat", "user")
    items = _read_map(folder / "i_map.dat", "item")
    entities = _read_map(kg / "e_map.dat", "entity")
    relations = _read_map(kg / "r_map.dat", "relation")

    ratings: dict[str, np.ndarray] = {}
    for part in PARTS:
        path = folder / f"{part}.dat"
        rows, lines = _read_rows(path, ("user id", "item id", "float:rating"))
        _check_known(path, rows[:, 0], lines, users, "user")
        _check_known(path, rows[:, 1], lines, items, "item")
        ratings[part] = rows
    base_ui = max(len(users), len(items))
    ratings, rating_dups = _dedupe_parts(ratings, base_ui)

    triples: dict[str, np.ndarray] = {}
    for part in PARTS:
        path = kg / f"{part}.dat"
        rows, lines = _read_rows(path, ("head entity id", "tail entity id", "relation id"))
        _check_known(path, rows[:, 0], lines, entities, "entity")
        _check_known(path, rows[:, 1], lines, entities, "entity")
        _check_known(path, rows[:, 2], lines, relations, "relation")
        triples[part] = rows[:, [0, 2, 1]]  # (head, tail, relation) -> (head, relation, tail)
    triples, triple_dups = _dedupe_parts(triples, max(len(entities), len(relations)))

    i2kg_path = require_file(folder / "i2kg_map.tsv")
    i2kg = _read_i2kg(i2kg_path)
    uri_to_entity = {uri: k for k, uri in enumerate(entities) if uri}
    item_entity = np.full(len(items), -1, dtype=np.int64)
    unknown_uri = 0
    for k, original in enumerate(items):
        uri = i2kg.get(original) if original else None
        if uri is None:
            continue
        ent = uri_to_entity.get(uri)
        if ent is None:
            unknown_uri += 1
        else:
            item_entity[k] = ent
    item_originals = set(items)
    extra_items = sum(1 for i in i2kg if i not in item_originals)

    def labelled(rows: np.ndarray) -> np.ndarray:
        return np.column_stack([rows, np.ones(len(rows), dtype=np.int64)]).reshape(-1, 3)

    split = Split(**{p: labelled(ratings[p]) for p in PARTS})
    return KGDataset(
        name=name or folder.name,
        interactions=np.concatenate([split.train, split.valid, split.test]),
        triples=np.concatenate([triples[p] for p in PARTS]),
        item_entity=item_entity,
        n_users=len(users),
        n_items=len(items),
        n_entities=len(entities),
        n_relations=len(relations),
        user_ids=users,
        item_ids=items,
        entity_ids=entities,
        relation_names=relations,
        given_split=split,
        kg_split=triples,
        meta={
            "layout": "ktup",
            "source": str(folder),
            "duplicates_removed": {"ratings": rating_dups, "triples": triple_dups},
            "i2kg_items_not_in_i_map": extra_items,
            "i2kg_uris_not_in_e_map": unknown_uri,
        },
    )
