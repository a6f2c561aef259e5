"""``kgrec datasets check``: what commonly goes wrong in a dataset, with counts and examples.

:func:`check_dataset` returns a :class:`Report` (counts plus one :class:`Finding` per kind
of problem) and :meth:`Report.text` renders it. For the ``csv`` and ``atomic`` layouts the
rows are checked as written (before duplicates are merged and negatives sampled, with
file line numbers in the examples); for the other layouts the loaded dataset is checked.

Findings: duplicate interaction rows, conflicting labels of one (user, item) pair, rows
lost to a filter (ratings below ``rating_threshold``, users under ``min_user_positives``),
users without a positive, duplicate triples, items without an entity, link rows naming
items without interactions or entities without triples (dangling ids), items linked to
several entities and entities linked to several items, and entities never reached from
any item (in a KG component that holds no item's entity), with the triples among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from kgrec.data.dataset import KGDataset
from kgrec.data.readers.custom import first_rows
from kgrec.data.registry import DATASETS, _detect_layout, get_spec, load_dataset
from kgrec.errors import DataError

N_EXAMPLES = 3


@dataclass
class Finding:
    key: str
    title: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class Report:
    path: str
    layout: str
    counts: dict[str, int]
    findings: list[Finding]

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.count]

    def as_dict(self) -> dict:
        return {"path": self.path, "layout": self.layout, "counts": self.counts,
                "findings": {f.key: {"title": f.title, "count": f.count, "examples": f.examples}
                             for f in self.findings}}

    def text(self) -> str:
        lines = [f"{self.path} (layout {self.layout})",
                 "  " + ", ".join(f"{k} {v:,}" for k, v in self.counts.items())]
        if not self.problems:
            lines.append("no problem found")
        for f in self.problems:
            lines.append(f"{f.title}: {f.count:,}")
            lines += [f"    e.g. {x}" for x in f.examples]
        ok = [f.title for f in self.findings if not f.count]
        if ok and self.problems:
            lines.append("none of: " + "; ".join(ok))
        return "\n".join(lines)


def _name(names: list[str] | None, k: int) -> str:
    return names[k] if names is not None and 0 <= k < len(names) and names[k] else str(k)


def _finding(key: str, title: str, mask_or_idx: np.ndarray, fmt, count: int | None = None) -> Finding:
    idx = np.flatnonzero(mask_or_idx) if mask_or_idx.dtype == bool else np.asarray(mask_or_idx)
    return Finding(key, title, int(len(idx) if count is None else count),
                   [fmt(int(k)) for k in idx[:N_EXAMPLES]])


def _repeats(rows: np.ndarray) -> np.ndarray:
    """Mask of rows equal to an earlier row."""
    mask = np.ones(len(rows), dtype=bool)
    mask[first_rows(rows)] = False
    return mask


def unreached_entities(n_entities: int, triples: np.ndarray, item_entities: np.ndarray) -> np.ndarray:
    """Mask of entities in no KG component (edges undirected) that holds an item's entity."""
    if n_entities == 0:
        return np.zeros(0, dtype=bool)
    g = coo_matrix((np.ones(len(triples)), (triples[:, 0], triples[:, 2])),
                   shape=(n_entities, n_entities))
    _, comp = connected_components(g, directed=False)
    reached = np.zeros(comp.max() + 1, dtype=bool)
    reached[comp[item_entities[item_entities >= 0]]] = True
    return ~reached[comp]


def _kg_findings(n_entities, triples, item_entities, ents, rels, where) -> list[Finding]:
    un = unreached_entities(n_entities, triples, item_entities)
    lost = un[triples[:, 0]] if len(triples) else np.zeros(0, dtype=bool)
    return [
        _finding("unreached_entities", "entities never reached from any item (no path in the KG)",
                 un, lambda k: _name(ents, k)),
        _finding("unreached_triples", "triples among those entities (no item's entity is "
                 "connected to them)", lost,
                 lambda k: f"{where(k)}{_name(ents, triples[k, 0])} --{_name(rels, triples[k, 1])}--> "
                 f"{_name(ents, triples[k, 2])}"),
    ]


def check_rows(raw, rating_threshold: float | None = None, min_user_positives: int = 0) -> Report:
    """Findings on the rows of a ``csv``/``atomic`` folder as written."""
    from kgrec.data.readers.custom import encode, positive_mask

    enc = encode(raw)
    it = raw.interactions

    def at(tab):
        return lambda k: f"{Path(tab.path).name}:{tab.lines[k]}: "

    it_at, tr_at = at(it), at(raw.triples)
    users, items, ents, rels = enc.users, enc.items, enc.entities, enc.relations
    pos, kept = positive_mask(raw, rating_threshold)
    n_items = max(len(items), 1)
    key = enc.inter[:, 0] * n_items + enc.inter[:, 1]

    def pair(k: int) -> str:
        return f"{it_at(k)}{users[enc.inter[k, 0]]}, {items[enc.inter[k, 1]]}"

    same = enc.inter if raw.values is None else np.c_[enc.inter, raw.values]
    findings = [_finding("duplicate_interactions", "duplicate interaction rows", _repeats(same), pair)]
    # conflicting values: one pair with several values
    if raw.values is not None:
        vals = np.c_[key, raw.values]
        distinct = np.unique(vals, axis=0)
        pk, cnt = np.unique(distinct[:, 0], return_counts=True)
        bad = np.isin(key, pk[cnt > 1])
        first = bad & ~_repeats(key[:, None])
        findings.append(_finding("conflicting_labels", f"(user, item) pairs with conflicting "
                                 f"{raw.value_kind}s", first, pair))
    else:
        findings.append(Finding("conflicting_labels", "(user, item) pairs with conflicting labels", 0))
    findings.append(_finding("below_threshold", "interactions lost to the rating threshold"
                             + (f" {rating_threshold:g} (dropped, never sampled as negatives)"
                                if rating_threshold is not None else ""), ~kept,
                             lambda k: f"{pair(k)}, {raw.values[k]:g}"))
    n_pos = np.bincount(np.unique(key[pos & kept]) // n_items, minlength=len(users))
    findings.append(_finding("users_without_positive", "users without a positive interaction "
                             "(nothing to learn or evaluate for them)", n_pos == 0,
                             lambda k: users[k]))
    if min_user_positives > 0:
        small = n_pos < min_user_positives
        rows = small[enc.inter[:, 0]]
        findings.append(_finding("lost_to_min_positives", f"interactions lost to "
                                 f"min_user_positives={min_user_positives} "
                                 f"({int(small.sum())} users)", rows, pair))
    findings.append(_finding(
        "duplicate_triples", "duplicate triples", _repeats(enc.triples),
        lambda k: f"{tr_at(k)}{ents[enc.triples[k, 0]]} --{rels[enc.triples[k, 1]]}--> "
                  f"{ents[enc.triples[k, 2]]}"))
    links = enc.links
    lk = raw.links
    lk_at = at(lk) if lk is not None else (lambda k: "")
    linked = np.zeros(len(items), dtype=bool)
    linked[links[:, 0]] = True
    in_inter = np.zeros(len(items), dtype=bool)
    in_inter[enc.inter[:, 1]] = True
    findings.append(_finding("items_without_entity", "items without an entity (no link"
                             + ("" if lk is not None else ": no entity of the same name") + ")",
                             in_inter & ~linked, lambda k: items[k]))
    in_kg = np.zeros(len(ents), dtype=bool)
    in_kg[enc.triples[:, [0, 2]].ravel()] = True
    ulinks = np.unique(links, axis=0)
    findings += [
        _finding("duplicate_links", "duplicate link rows", _repeats(links),
                 lambda k: f"{lk_at(k)}{items[links[k, 0]]}, {ents[links[k, 1]]}"),
        _finding("dangling_link_items", "link rows naming an item with no interaction",
                 ~in_inter[links[:, 0]], lambda k: f"{lk_at(k)}{items[links[k, 0]]}"),
        _finding("dangling_link_entities", "link rows naming an entity in no triple",
                 ~in_kg[links[:, 1]], lambda k: f"{lk_at(k)}{ents[links[k, 1]]}"),
    ]
    for col, other, key_, title in ((0, 1, "items_linked_twice", "items linked to several entities"),
                                    (1, 0, "entities_linked_twice", "entities linked to several items")):
        vals, cnt = np.unique(ulinks[:, col], return_counts=True)
        multi = vals[cnt > 1]
        names_c, names_o = (items, ents) if col == 0 else (ents, items)
        findings.append(Finding(key_, title, int(len(multi)), [
            f"{names_c[v]}: " + ", ".join(names_o[o] for o in ulinks[ulinks[:, col] == v, other][:4])
            for v in multi[:N_EXAMPLES].tolist()]))
    item_entities = np.full(len(items), -1, dtype=np.int64)
    item_entities[links[:, 0]] = links[:, 1]
    findings += _kg_findings(len(ents), enc.triples, item_entities, ents, rels, tr_at)
    counts = {"users": len(users), "items": len(items), "entities": len(ents),
              "relations": len(rels), "interaction rows": len(enc.inter),
              "triple rows": len(enc.triples), "link rows": len(links)}
    return Report(str(raw.meta.get("source", raw.name)), raw.meta.get("layout", "?"), counts, findings)


def check_loaded(ds: KGDataset, layout: str, min_user_positives: int = 0) -> Report:
    """Findings on a loaded dataset (layouts read without their raw rows)."""
    inter, ents, rels = ds.interactions, ds.entity_ids, ds.relation_names
    n_items = max(ds.n_items, 1)

    def pair(k: int) -> str:
        return f"{_name(ds.user_ids, inter[k, 0])}, {_name(ds.item_ids, inter[k, 1])}"

    key = inter[:, 0] * n_items + inter[:, 1]
    distinct = np.unique(np.c_[key, inter[:, 2]], axis=0)
    pk, cnt = np.unique(distinct[:, 0], return_counts=True)
    conflict = np.isin(key, pk[cnt > 1]) & ~_repeats(key[:, None])
    n_pos = np.bincount(inter[inter[:, 2] == 1, 0], minlength=ds.n_users)
    in_inter = np.zeros(ds.n_items, dtype=bool)
    in_inter[inter[:, 1]] = True
    findings = [
        _finding("duplicate_interactions", "duplicate interaction rows (same user and item)",
                 _repeats(inter[:, :2]), pair),
        _finding("conflicting_labels", "(user, item) pairs with conflicting labels", conflict, pair),
        _finding("users_without_positive", "users without a positive interaction",
                 n_pos == 0, lambda k: _name(ds.user_ids, k)),
    ]
    if min_user_positives > 0:
        findings.append(_finding("lost_to_min_positives", f"interactions lost to "
                                 f"min_user_positives={min_user_positives}",
                                 (n_pos < min_user_positives)[inter[:, 0]], pair))
    findings += [
        _finding("duplicate_triples", "duplicate triples", _repeats(ds.triples),
                 lambda k: f"{_name(ents, ds.triples[k, 0])} --{_name(rels, ds.triples[k, 1])}--> "
                 f"{_name(ents, ds.triples[k, 2])}"),
        _finding("items_without_entity", "items without an entity",
                 in_inter & (ds.item_entity < 0), lambda k: _name(ds.item_ids, k)),
        *_kg_findings(ds.n_entities, ds.triples, ds.item_entity, ents, rels, lambda k: ""),
    ]
    removed = ds.meta.get("duplicates_removed")
    if removed:
        findings.append(Finding("removed_by_reader", "rows the reader dropped as duplicates",
                                int(sum(_flat(removed))), [f"{removed}"]))
    counts = {"users": ds.n_users, "items": ds.n_items, "entities": ds.n_entities,
              "relations": ds.n_relations, "interactions": len(inter), "triples": len(ds.triples)}
    return Report(ds.name, layout, counts, findings)


def _flat(d) -> list[int]:
    return [v for x in d.values() for v in (_flat(x) if isinstance(x, dict) else [x])]


def check_dataset(name_or_path: str, layout: str = "auto", data_dir: str | Path | None = None,
                  rating_threshold: float | None = None, min_user_positives: int = 0) -> Report:
    """Check a named dataset or a folder; raises :class:`DataError` only when unreadable."""
    folder = Path(name_or_path)
    if layout == "auto" and name_or_path not in DATASETS and folder.is_dir():
        layout = _detect_layout(folder, None)
    if layout in ("csv", "atomic"):
        if not folder.is_dir():
            raise DataError(folder, None, "dataset folder not found")
        if layout == "csv":
            from kgrec.data.readers.custom import read_custom as read
        else:
            from kgrec.data.readers.recbole import read_atomic as read
        return check_rows(read(folder), rating_threshold, min_user_positives)
    ds = load_dataset(name_or_path, layout, data_dir)
    if layout == "auto":
        layout = ds.meta.get("layout") or (get_spec(name_or_path).default_layout
                                           if name_or_path in DATASETS else "auto")
    return check_loaded(ds, layout, min_user_positives)
