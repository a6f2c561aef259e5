"""Write a loaded dataset in kgrec's ``csv`` layout, RecBole atomic files or the KGAT layout.

Ids are written as the data's own strings (``user_ids``, ``item_ids``, ``entity_ids``,
``relation_names``); a dataset with integer ids only writes its indexes. A missing or
repeated name (KTUP maps may skip ids) is made unique as ``NAME#INDEX``. Every file is
written atomically; existing files are kept unless ``overwrite``.

* ``csv``: ``interactions.csv`` (``user,item,label``: sampled negatives are written as
  observed negatives, so reading it back gives the same labelled rows), ``triples.csv``,
  ``links.csv``; comma separated with a header, fields quoted where needed. A dataset of
  positives only (KTUP, KGAT layouts) comes back with sampled negatives added, as any
  positives-only input does (its positives, triples and links are unchanged).
* ``atomic``: ``NAME.inter`` (``user_id:token item_id:token label:float``), ``NAME.kg``,
  ``NAME.link``; tab separated with RecBole's ``field:type`` headers.
* ``kgat``: ``train.txt``/``test.txt`` (``user item item ...``, positives only: the layout
  has no negatives), ``kg_final.txt`` and the ``*_list.txt`` files with the names. Items
  are entities ``0..n_items-1`` in this layout, so a linked item takes its entity's place;
  an unlinked item (or the second item linked to an already used entity) gets an entity of
  its own named by the item id. The test part is the dataset's given test split, else a
  seeded per-user 8:2 split of the positives (:func:`~kgrec.data.splits.per_user_split`).
  The lists are whitespace separated, so blanks in names are written as ``_``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset
from kgrec.data.registry import atomic_write_bytes
from kgrec.data.splits import per_user_split
from kgrec.errors import ConfigError, DataError

FORMATS = ("csv", "atomic", "kgat")


def names(values: list[str] | None, n: int) -> list[str]:
    """``n`` unique non-empty names: the original ids, or indexes when there are none."""
    if values is None:
        return [str(k) for k in range(n)]
    out, seen = [], set()
    for k in range(n):
        v = str(values[k]) if k < len(values) else ""
        if not v or v in seen:
            v = f"{v}#{k}"
        seen.add(v)
        out.append(v)
    return out


def _csv_bytes(header: list[str], rows) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def _tsv_bytes(path_name: str, header: list[str] | None, rows, sep: str = "\t") -> bytes:
    lines = [sep.join(header)] if header else []
    for row in rows:
        for v in row:
            if sep in v or "\n" in v or "\r" in v:
                raise DataError(path_name, None, f"name {v!r} contains a separator or line "
                                "break; export to csv instead")
        lines.append(sep.join(row))
    return ("\n".join(lines) + "\n").encode()


def _blank_free(values: list[str]) -> list[str]:
    return ["_".join(v.split()) or "_" for v in values]


def _tables(ds: KGDataset) -> tuple[list, list, list]:
    users, items = names(ds.user_ids, ds.n_users), names(ds.item_ids, ds.n_items)
    ents, rels = names(ds.entity_ids, ds.n_entities), names(ds.relation_names, ds.n_relations)
    inter = [(users[u], items[i], str(y)) for u, i, y in ds.interactions.tolist()]
    triples = [(ents[h], rels[r], ents[t]) for h, r, t in ds.triples.tolist()]
    linked = np.flatnonzero(ds.item_entity >= 0)
    links = [(items[i], ents[ds.item_entity[i]]) for i in linked.tolist()]
    return inter, triples, links


def export_dataset(ds: KGDataset, to: str, out_dir: str | Path, overwrite: bool = False,
                   seed: int = 0) -> list[Path]:
    """Write ``ds`` in format ``to`` (``csv``, ``atomic`` or ``kgat``) into ``out_dir``;
    returns the files written."""
    if to not in FORMATS:
        raise ConfigError(f"unknown export format {to!r}; one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    files = {"csv": _csv_files, "atomic": _atomic_files, "kgat": _kgat_files}[to](ds, out, seed)
    clash = [p for p in files if p.exists()]
    if clash and not overwrite:
        raise ConfigError(f"{clash[0]} exists; choose an empty --out folder or pass --force")
    for path, data in files.items():
        atomic_write_bytes(path, data)
    return list(files)


def _csv_files(ds: KGDataset, out: Path, seed: int) -> dict[Path, bytes]:
    inter, triples, links = _tables(ds)
    return {out / "interactions.csv": _csv_bytes(["user", "item", "label"], inter),
            out / "triples.csv": _csv_bytes(["head", "relation", "tail"], triples),
            out / "links.csv": _csv_bytes(["item", "entity"], links)}


def _atomic_files(ds: KGDataset, out: Path, seed: int) -> dict[Path, bytes]:
    inter, triples, links = _tables(ds)
    stem = out.name or "dataset"
    inter = [(u, i, f"{float(y):.1f}") for u, i, y in inter]
    return {
        out / f"{stem}.inter": _tsv_bytes(f"{stem}.inter", ["user_id:token", "item_id:token",
                                                           "label:float"], inter),
        out / f"{stem}.kg": _tsv_bytes(f"{stem}.kg", ["head_id:token", "relation_id:token",
                                                     "tail_id:token"], triples),
        out / f"{stem}.link": _tsv_bytes(f"{stem}.link", ["item_id:token", "entity_id:token"], links),
    }


def kgat_entity_map(ds: KGDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(entity -> KGAT id, item -> KGAT entity id)``: items first, each linked item in
    its entity's place, the other entities after them in order."""
    n_items = ds.n_items
    ent_new = np.full(ds.n_entities, -1, dtype=np.int64)
    linked = np.flatnonzero(ds.item_entity >= 0)
    ents = ds.item_entity[linked]
    _, first = np.unique(ents, return_index=True)  # an entity takes its first item's place
    ent_new[ents[first]] = linked[first]
    rest = np.flatnonzero(ent_new < 0)
    ent_new[rest] = n_items + np.arange(len(rest))
    return ent_new, rest


def _kgat_files(ds: KGDataset, out: Path, seed: int) -> dict[Path, bytes]:
    ent_new, rest = kgat_entity_map(ds)
    n_items = ds.n_items
    users = _blank_free(names(ds.user_ids, ds.n_users))
    items = _blank_free(names(ds.item_ids, ds.n_items))
    ents = _blank_free(names(ds.entity_ids, ds.n_entities))
    rels = _blank_free(names(ds.relation_names, ds.n_relations))
    item_ent = [ents[ds.item_entity[i]] if ds.item_entity[i] >= 0 and ent_new[ds.item_entity[i]] == i
                else items[i] for i in range(n_items)]
    entity_names = item_ent + [ents[e] for e in rest.tolist()]
    if ds.given_split is not None:
        sp = ds.given_split
        train = np.concatenate([sp.train, sp.valid])
        test = sp.test
        train, test = train[train[:, 2] == 1, :2], test[test[:, 2] == 1, :2]
    else:
        pos = ds.interactions[ds.interactions[:, 2] == 1]
        sp = per_user_split(pos, (0.8, 0.0, 0.2), seed)
        train, test = sp.train[:, :2], sp.test[:, :2]

    def user_lines(pairs: np.ndarray) -> bytes:
        pairs = np.unique(pairs, axis=0)
        ptr = np.searchsorted(pairs[:, 0], np.arange(ds.n_users + 1))
        rows = []
        for u in range(ds.n_users):  # one line per user, as the layout has it
            its = pairs[ptr[u]:ptr[u + 1], 1]
            rows.append(" ".join([str(u), *map(str, its.tolist())]))
        return ("\n".join(rows) + "\n").encode()

    kg = np.c_[ent_new[ds.triples[:, 0]], ds.triples[:, 1], ent_new[ds.triples[:, 2]]]

    def listing(header: str, rows) -> bytes:
        return (header + "\n" + "".join(" ".join(map(str, r)) + "\n" for r in rows)).encode()

    return {
        out / "train.txt": user_lines(train),
        out / "test.txt": user_lines(test),
        out / "kg_final.txt": "".join(f"{h} {r} {t}\n" for h, r, t in kg.tolist()).encode(),
        out / "user_list.txt": listing("org_id remap_id", zip(users, range(ds.n_users), strict=True)),
        out / "item_list.txt": listing("org_id remap_id freebase_id",
                                       zip(items, range(n_items), item_ent, strict=True)),
        out / "entity_list.txt": listing("org_id remap_id",
                                         zip(entity_names, range(len(entity_names)), strict=True)),
        out / "relation_list.txt": listing("org_id remap_id",
                                           zip(rels, range(ds.n_relations), strict=True)),
    }
