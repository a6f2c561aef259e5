"""Reader for kgrec's own input format (layout ``csv``): string ids, CSV or TSV.

A dataset folder holds three files, each ``.csv``, ``.tsv`` or ``.txt``::

    interactions.csv   user,item[,label|rating]     who interacted with what
    triples.csv        head,relation,tail           the knowledge graph, by name
    links.csv          item,entity                  which entity each item is (optional)

Readings (the documented policy):

* **Delimiter**: the first non-blank line decides: a tab, else a comma, else a semicolon.
  Comma- and semicolon-separated fields may be quoted (``"Crosby, Stills & Nash"``); tab
  separated fields are taken as they are. Fields are stripped of surrounding blanks; an
  empty id is an error. A UTF-8 byte order mark is ignored.
* **Header**: optional. The first line is a header when its fields are the column names
  (case-insensitive): ``user``/``user_id``, ``item``/``item_id``, then for interactions any
  name for the third column; ``head``, ``relation``, ``tail``; ``item``, ``entity``.
* **Third column of interactions**: a column named ``label`` (or, without a header, one
  whose values are all 0 or 1) is a label: 1 a positive, 0 an observed negative. Any other
  third column is a rating: with ``rating_threshold`` set, a rating at or above it is a
  positive and one below is dropped and never drawn as a sampled negative (MKR's policy);
  without it every rated row is a positive (KTUP's policy). No third column: every row is
  a positive.
* **Negatives**: when the data has no observed negative, each user gets one sampled
  negative per positive, drawn uniformly without replacement from the items they have no
  row for (MKR's preprocessing; seeded by ``negative_seed``, fixed so the dataset is the
  same on every load; a user with too few such items gets as many as there are). CTR
  models train on them; top-K models use only the positives.
* **Duplicates**: rows repeating a ``(user, item)`` pair are merged (positive wins over
  negative); repeated triples and link rows are dropped; the counts are in
  ``meta["duplicates_removed"]``. An item linked to two different entities is an error.
* **Links**: without a link file, an item is linked to the entity of the same name when
  the KG has one. Items are the items of the interactions, then items only in the link
  file; entities are those of the triples, then those only in the link file. Ids are
  numbered in order of first appearance; the dataset keeps the original strings
  (``user_ids``, ``item_ids``, ``entity_ids``, ``relation_names``).

Every malformed line (wrong number of fields, empty id, a label other than 0/1, a rating
that is not a finite number) raises :class:`~kgrec.errors.DataError` naming file and line.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset
from kgrec.data.samplers import PairSet
from kgrec.errors import DataError

SUFFIXES = (".csv", ".tsv", ".txt")
STEMS = {"interactions": True, "triples": True, "links": False}  # stem -> required
USER_NAMES = {"user", "user_id", "userid", "uid"}
ITEM_NAMES = {"item", "item_id", "itemid", "iid"}
HEADERS = {
    "triples": ({"head", "head_id", "h", "subject"}, {"relation", "relation_id", "r", "predicate"},
                {"tail", "tail_id", "t", "object"}),
    "links": (ITEM_NAMES, {"entity", "entity_id", "eid"}),
}
NEGATIVE_SEED = 555


@dataclass
class Table:
    """String rows of one file with the line number of each row."""

    path: Path
    rows: list[list[str]]
    lines: list[int]
    header: list[str] | None = None

    def column(self, k: int) -> list[str]:
        return [r[k] for r in self.rows]


@dataclass
class RawData:
    """A dataset's rows as read, before any policy: what :func:`build` and the checks use.

    ``values`` is the interactions' third column as floats (``None`` without one) and
    ``value_kind`` says how to read it (``"label"``, ``"rating"`` or ``None``).
    """

    name: str
    interactions: Table
    triples: Table
    links: Table | None
    values: np.ndarray | None = None
    value_kind: str | None = None
    meta: dict = field(default_factory=dict)


def find_file(folder: Path, stem: str, required: bool = True) -> Path | None:
    """``folder/stem.{csv,tsv,txt}``; exactly one may exist."""
    found = [folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").is_file()]
    if len(found) > 1:
        raise DataError(folder, None, f"several {stem} files: {', '.join(p.name for p in found)}")
    if not found:
        if required:
            raise DataError(folder / f"{stem}.csv", None,
                            f"file not found (expected {stem}.csv, {stem}.tsv or {stem}.txt)")
        return None
    return found[0]


def is_custom(folder: Path) -> bool:
    return any((folder / f"interactions{s}").is_file() for s in SUFFIXES)


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise DataError(path, None, "file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(path, line, f"not UTF-8 text (byte {data[e.start]:#04x})") from None
    if "\x00" in text:
        raise DataError(path, text[: text.index("\x00")].count("\n") + 1, "NUL byte in the file")
    return text.removeprefix("\ufeff")


def sniff_delimiter(text: str) -> str:
    """Tab, else comma, else semicolon, from the first non-blank line."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    for sep in ("\t", ",", ";"):
        if sep in first:
            return sep
    return ","


def read_table(path: Path, n_fields: tuple[int, ...] | None, what: str,
               sep: str | None = None) -> Table:
    """Rows of a delimited file (``sep``, else sniffed), each with one of ``n_fields`` fields
    (any, when ``None``) and all with the same number."""
    text = _decode(path)
    sep = sep or sniff_delimiter(text)
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting, strict=True)
    rows, lines = [], []
    width = None
    try:
        for fields in reader:
            no = reader.line_num
            fields = [f.strip() for f in fields]
            if not any(fields):
                continue
            if n_fields is not None and len(fields) not in n_fields:
                want = " or ".join(map(str, n_fields))
                raise DataError(path, no, f"expected {want} {what} fields, found {len(fields)}: "
                                f"{sep.join(fields)!r}")
            if width is not None and len(fields) != width:
                raise DataError(path, no, f"{len(fields)} fields where line {lines[0]} has {width}")
            width = len(fields)
            rows.append(fields)
            lines.append(no)
    except csv.Error as e:
        raise DataError(path, reader.line_num, f"malformed line: {e}") from None
    if not rows:
        raise DataError(path, None, "file has no data lines")
    return Table(path, rows, lines)


def _take_header(table: Table, names: tuple[set[str], ...], free_last: bool = False) -> None:
    """Drop the first row when it is a header (its fields are the column names)."""
    first = [f.lower() for f in table.rows[0]]
    known = all(first[k] in names[k] for k in range(len(names)))
    if free_last and known and len(first) > len(names):
        known = not _is_number(first[len(names)])
    if known:
        table.header = table.rows[0]
        del table.rows[0], table.lines[0]
        if not table.rows:
            raise DataError(table.path, None, "file has a header and no data lines")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_ids(table: Table, what: tuple[str, ...]) -> None:
    for row, no in zip(table.rows, table.lines, strict=True):
        for k, name in enumerate(what):
            if not row[k]:
                raise DataError(table.path, no, f"empty {name}")


def parse_values(table: Table, column: int, kind: str | None) -> tuple[np.ndarray, str]:
    """The third column as floats; ``kind`` ``label``/``rating`` or ``None`` (values all 0
    or 1: label, else rating). Raises for a non-finite number or a label other than 0/1."""
    values = np.empty(len(table.rows))
    for k, (row, no) in enumerate(zip(table.rows, table.lines, strict=True)):
        try:
            v = float(row[column])
        except ValueError:
            raise DataError(table.path, no, f"{kind or 'label or rating'} is not a number: "
                            f"{row[column]!r} (a header line names the columns user,item,"
                            "label|rating)") from None
        if not math.isfinite(v):
            raise DataError(table.path, no, f"{kind or 'rating'} is not finite: {row[column]!r}")
        values[k] = v
    if kind is None:
        kind = "label" if np.isin(values, (0.0, 1.0)).all() else "rating"
    if kind == "label":
        bad = np.flatnonzero(~np.isin(values, (0.0, 1.0)))
        if len(bad):
            raise DataError(table.path, table.lines[bad[0]],
                            f"label must be 0 or 1, got {table.rows[bad[0]][column]!r}")
    return values, kind


def read_custom(folder: str | Path, name: str | None = None) -> RawData:
    """The rows of a ``csv``-layout folder (see the module doc), checked line by line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, "dataset folder not found")
    inter = read_table(find_file(folder, "interactions"), (2, 3), "interaction")
    _take_header(inter, (USER_NAMES, ITEM_NAMES), free_last=True)
    check_ids(inter, ("user id", "item id"))
    triples = read_table(find_file(folder, "triples"), (3,), "triple")
    _take_header(triples, HEADERS["triples"])
    check_ids(triples, ("head", "relation", "tail"))
    link_path = find_file(folder, "links", required=False)
    links = None
    if link_path is not None:
        links = read_table(link_path, (2,), "link")
        _take_header(links, HEADERS["links"])
        check_ids(links, ("item id", "entity id"))
    values = kind = None
    if len(inter.rows[0]) == 3:
        hint = None
        if inter.header is not None:
            hint = "label" if inter.header[2].strip().lower() in ("label", "click") else "rating"
        values, kind = parse_values(inter, 2, hint)
    return RawData(name or folder.name, inter, triples, links, values, kind,
                   meta={"layout": "csv", "source": str(folder)})


# ---- from rows to a dataset ------------------------------------------------------------
def first_appearance(*columns) -> tuple[list[str], list[np.ndarray]]:
    """Names in order of first appearance over ``columns`` and each column as ids."""
    index: dict[str, int] = {}
    ids = [np.fromiter((index.setdefault(x, len(index)) for x in col), dtype=np.int64,
                       count=len(col)) for col in columns]
    return list(index), ids


def first_rows(rows: np.ndarray) -> np.ndarray:
    """Sorted indexes of the first occurrence of each distinct row of an int array."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(rows.T[::-1])
    srt = rows[order]
    new = np.r_[True, (srt[1:] != srt[:-1]).any(axis=1)]
    group = np.cumsum(new) - 1
    first = np.full(int(group[-1]) + 1, len(rows), dtype=np.int64)
    np.minimum.at(first, group, order)
    return np.sort(first)


@dataclass
class Encoded:
    """Rows as integer ids (every row kept, duplicates included) with the name lists."""

    users: list[str]
    items: list[str]
    entities: list[str]
    relations: list[str]
    inter: np.ndarray  # (n, 2) user, item
    triples: np.ndarray  # (m, 3) head, relation, tail
    links: np.ndarray  # (k, 2) item, entity


def encode(raw: RawData) -> Encoded:
    it, tr = raw.interactions, raw.triples
    users, (u,) = first_appearance(it.column(0))
    lk = raw.links
    link_items = lk.column(0) if lk is not None else []
    link_ents = lk.column(1) if lk is not None else []
    items, (i, li) = first_appearance(it.column(1), link_items)
    entities, (h, t, le) = first_appearance(tr.column(0), tr.column(2), link_ents)
    relations, (r,) = first_appearance(tr.column(1))
    if lk is None:  # items link to the entity of the same name
        ent_index = {e: k for k, e in enumerate(entities)}
        pairs = [(k, ent_index[x]) for k, x in enumerate(items) if x in ent_index]
        links = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    else:
        links = np.c_[li, le].astype(np.int64).reshape(-1, 2)
    return Encoded(users, items, entities, relations, np.c_[u, i].astype(np.int64).reshape(-1, 2),
                   np.c_[h, r, t].astype(np.int64).reshape(-1, 3), links)


def positive_mask(raw: RawData, rating_threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``(positive, kept)`` per interaction row under the label/rating policy."""
    n = len(raw.interactions.rows)
    if raw.values is None:
        return np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    if raw.value_kind == "label":
        return raw.values == 1, np.ones(n, dtype=bool)
    if rating_threshold is None:
        return np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    pos = raw.values >= rating_threshold
    return pos, pos


def sample_negatives(pos: np.ndarray, taken: np.ndarray, n_users: int, n_items: int,
                     seed: int) -> np.ndarray:
    """One negative per positive ``(user, item)`` pair, drawn without replacement from the
    items with no ``taken`` pair for that user (as many as there are when too few)."""
    rng = np.random.default_rng(seed)
    n_pos = np.bincount(pos[:, 0], minlength=n_users)
    n_taken = np.bincount(np.unique(taken[:, 0] * n_items + taken[:, 1]) // n_items,
                          minlength=n_users)
    need = np.minimum(n_pos, n_items - n_taken)
    exclude = PairSet(taken[:, 0], taken[:, 1], n_items)
    got = np.zeros(0, dtype=np.int64)  # keys user * n_items + item
    for _ in range(100):
        have = np.bincount(got // n_items, minlength=n_users)
        missing = need - have
        if missing.sum() == 0:
            break
        users = np.repeat(np.arange(n_users), missing)
        cand = rng.integers(0, n_items, size=len(users))
        ok = ~exclude.contains(users, cand)
        keys = users[ok] * n_items + cand[ok]
        keys = keys[~np.isin(keys, got)]
        keys, first = np.unique(keys, return_index=True)
        keys = keys[np.argsort(first)]  # arrival order, so the cap below is seeded, not sorted
        ku = keys // n_items
        order = np.argsort(ku, kind="stable")
        rank = np.empty(len(keys), dtype=np.int64)  # position among the user's new keys
        rank[order] = np.arange(len(keys)) - np.searchsorted(ku[order], ku[order])
        got = np.concatenate([got, keys[rank < missing[ku]]])
    else:  # dense users: take what is left of their items exactly
        have = np.bincount(got // n_items, minlength=n_users)
        for u in np.flatnonzero(need > have):
            free = np.setdiff1d(np.arange(n_items), np.r_[taken[taken[:, 0] == u, 1],
                                                           got[got // n_items == u] % n_items])
            pick = rng.choice(free, size=need[u] - have[u], replace=False)
            got = np.concatenate([got, u * n_items + pick])
    got = np.sort(got)
    return np.c_[got // n_items, got % n_items].astype(np.int64).reshape(-1, 2)


def build(raw: RawData, rating_threshold: float | None = None,
          negative_seed: int = NEGATIVE_SEED) -> KGDataset:
    """A :class:`KGDataset` from the rows, under the policy of the module doc."""
    enc = encode(raw)
    n_users, n_items = len(enc.users), len(enc.items)
    pos, kept = positive_mask(raw, rating_threshold)
    # duplicates: one row per (user, item), positive wins
    key = enc.inter[:, 0] * n_items + enc.inter[:, 1]
    keys, inv = np.unique(key[kept], return_inverse=True)
    label = np.zeros(len(keys), dtype=np.int64)
    np.maximum.at(label, inv, pos[kept].astype(np.int64))
    first = np.full(len(keys), len(key), dtype=np.int64)
    np.minimum.at(first, inv, np.flatnonzero(kept))
    order = np.argsort(first)
    inter = np.c_[keys // n_items, keys % n_items, label][order]
    dup_inter = int(kept.sum() - len(keys))
    n_sampled = 0
    if not (inter[:, 2] == 0).any():
        taken = enc.inter  # every row, dropped low ratings included, is never a negative
        neg = sample_negatives(inter[:, :2], taken, n_users, n_items, negative_seed)
        n_sampled = len(neg)
        inter = np.concatenate([inter, np.c_[neg, np.zeros(len(neg), dtype=np.int64)]])
    triples = enc.triples[first_rows(enc.triples)]
    links = enc.links[first_rows(enc.links)]
    items_linked, counts = np.unique(links[:, 0], return_counts=True)
    if (counts > 1).any():
        item = int(items_linked[counts > 1][0])
        rows = np.flatnonzero(enc.links[:, 0] == item)
        line = raw.links.lines[int(rows[1])] if raw.links is not None else None
        path = raw.links.path if raw.links is not None else None
        ents = sorted({enc.entities[int(e)] for e in enc.links[rows, 1]})
        raise DataError(path, line, f"item {enc.items[item]!r} linked to several entities: "
                        f"{', '.join(map(repr, ents))}")
    item_entity = np.full(n_items, -1, dtype=np.int64)
    item_entity[links[:, 0]] = links[:, 1]
    if not (inter[:, 2] == 1).any():
        raise DataError(raw.interactions.path, None, "no positive interaction"
                        + (f" (no rating >= {rating_threshold})" if rating_threshold is not None else ""))
    return KGDataset(
        name=raw.name, interactions=inter, triples=triples, item_entity=item_entity,
        n_users=n_users, n_items=n_items, n_entities=len(enc.entities),
        n_relations=len(enc.relations), user_ids=enc.users, item_ids=enc.items,
        entity_ids=enc.entities, relation_names=enc.relations,
        meta={**raw.meta, "labels": raw.value_kind or "implicit",
              "rating_threshold": rating_threshold, "sampled_negatives": n_sampled,
              "negative_seed": negative_seed if n_sampled else None,
              "dropped_below_threshold": int((~kept).sum()),
              "duplicates_removed": {"interactions": dup_inter,
                                     "triples": int(len(enc.triples) - len(triples)),
                                     "links": int(len(enc.links) - len(links))}},
    )


def load_custom(folder: str | Path, name: str | None = None,
                rating_threshold: float | None = None) -> KGDataset:
    """Read a ``csv``-layout folder into a :class:`KGDataset` (see the module doc)."""
    return build(read_custom(folder, name), rating_threshold)
