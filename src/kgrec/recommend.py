"""Recommendations and explanations from a finished run folder.

:class:`Recommender` holds a loaded run (model, dataset, split) so that many requests are
answered without reloading: it is what ``kgrec recommend``/``kgrec explain``, the Python API
(``kgrec.load``) and ``kgrec serve`` build on. The module-level :func:`recommend` and
:func:`explain_pair` are one-shot wrappers that load the run each call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import torch

from kgrec.errors import KGRecError


class IdIndex:
    """O(1) lookup of a user or item given by the data's own id.

    When the dataset has original ids only those are accepted (``--user 1`` on Last.FM,
    whose user ids do not include ``1``, is an error, not internal index 1); a dataset with
    integer ids only takes indexes ``0..n-1``.
    """

    def __init__(self, names: list[str] | None, n: int, what: str) -> None:
        self.names, self.n, self.what = names, n, what
        self.index = None if names is None else {x: k for k, x in enumerate(names) if x != ""}

    def __call__(self, value: str | int) -> int:
        text = str(value).strip()
        if self.index is not None:
            k = self.index.get(text)
            if k is None:
                some = ", ".join(repr(x) for x in list(self.index)[:3])
                raise KGRecError(f"unknown {self.what} {text!r} (this dataset's {self.what}s have "
                                 f"their own ids, e.g. {some})")
            return k
        if text.isascii() and text.isdigit() and int(text) < self.n:  # not "²" or "٣"
            return int(text)
        raise KGRecError(f"unknown {self.what} {text!r} (this dataset has integer ids "
                         f"0..{self.n - 1})")


def resolve_id(value: str | int, names: list[str] | None, n: int, what: str) -> int:
    """Index of ``value`` (see :class:`IdIndex`; builds the index each call)."""
    return IdIndex(names, n, what)(value)


def short_name(name: str) -> str:
    """Display form of an id: a URI (``http://dbpedia.org/resource/The_Ghost_Map``, also in
    ``<...>``) is shortened to its last path segment, percent-escapes decoded and
    underscores shown as blanks (DBpedia's convention: ``The Ghost Map``); other names are
    kept."""
    text = name.strip().removeprefix("<").removesuffix(">")
    if "://" in text or text.startswith(("urn:", "ns:")):
        tail = text.rstrip("/#").replace("#", "/").rsplit("/", 1)[-1]
        return unquote(tail).replace("_", " ") or text
    return name


def _name(names: list[str] | None, k: int) -> str:
    return names[k] if names is not None and 0 <= k < len(names) and names[k] else str(k)


def _shown(names: list[str] | None, k: int) -> str:
    return short_name(_name(names, k))


def fact_line(dataset, h: int, r: int, t: int) -> str:
    """``Radiohead --genre--> alternative rock``: names where the data has them."""
    return (f"{_shown(dataset.entity_ids, h)} --{_shown(dataset.relation_names, r)}--> "
            f"{_shown(dataset.entity_ids, t)}")


NO_NAMES = ("this dataset has integer ids only: entities and relations are shown by their "
            "index")


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


class Recommender:
    """A loaded run, answering recommendation, scoring and explanation requests.

    Users and items are given by the data's own ids (or, for data with integer ids only,
    by index); answers carry the data's id (``item``), a display name (``name``: the
    item's entity name, URIs shortened, when it is not a bare number; else the item id),
    the internal index (``item_index``) and the ``user`` asked for. Seen items are the
    user's training and validation positives.
    """

    def __init__(self, model, dataset, split, cfg=None) -> None:
        self.model = model.eval()
        self.dataset = dataset
        self.split = split
        self.cfg = cfg
        seen = np.concatenate([split.train, split.valid])
        seen = seen[seen[:, 2] == 1, :2]
        order = np.lexsort((seen[:, 1], seen[:, 0]))
        self._seen_items = seen[order, 1]
        self._seen_ptr = np.searchsorted(seen[order, 0], np.arange(dataset.n_users + 1))
        self.device = next(iter(model.parameters())).device
        self.user_index = IdIndex(dataset.user_ids, dataset.n_users, "user")
        self.item_index = IdIndex(dataset.item_ids, dataset.n_items, "item")

    @classmethod
    def from_run(cls, run_dir: str | Path, data_dir: str | Path | None = None) -> Recommender:
        from kgrec.training.experiment import load_run

        model, dataset, split, cfg = load_run(run_dir, data_dir)
        return cls(model, dataset, split, cfg)

    # ---- ids ------------------------------------------------------------------------
    def user_label(self, index: int) -> str:
        return _name(self.dataset.user_ids, index)

    def item_label(self, index: int) -> str:
        return _name(self.dataset.item_ids, index)

    def item_name(self, index: int) -> str:
        """Display name: the linked entity's name unless it is a bare number, else the id."""
        ds = self.dataset
        ent = int(ds.item_entity[index])
        if ds.entity_ids is not None and ent >= 0 and ds.entity_ids[ent] \
                and not ds.entity_ids[ent].isdigit():
            return short_name(ds.entity_ids[ent])
        return short_name(self.item_label(index))

    @property
    def has_names(self) -> bool:
        """Whether the KG has entity and relation names (not integer ids only)."""
        return self.dataset.entity_ids is not None and self.dataset.relation_names is not None

    def seen(self, user_index: int) -> np.ndarray:
        """Items of the user's training and validation positives."""
        return self._seen_items[self._seen_ptr[user_index]:self._seen_ptr[user_index + 1]]

    # ---- scoring --------------------------------------------------------------------
    @property
    def explains(self) -> bool:
        """Whether the model has an explanation of its own (``explain(user, items)``);
        MKR and the baselines have none."""
        return hasattr(self.model, "explain") and getattr(self.model, "can_explain", True)

    @torch.no_grad()
    def score(self, users: list[str | int], items: list[str | int]) -> np.ndarray:
        """Scores of ``(users[k], items[k])``: click probabilities for CTR models, ranking
        scores otherwise."""
        u = torch.tensor([self.user_index(x) for x in users], dtype=torch.long, device=self.device)
        i = torch.tensor([self.item_index(x) for x in items], dtype=torch.long, device=self.device)
        s = self.model.score(u, i)
        if getattr(self.model, "ctr_output", False):
            s = torch.sigmoid(s)
        return s.cpu().numpy()

    @torch.no_grad()
    def recommend(self, user: str | int, k: int = 10, explain: bool = False,
                  exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items for ``user`` (by default among items the user has not seen), with
        scores and, optionally, explanations (for a model without one, each explanation
        says so: ``{"available": False, "note": ..., "lines": []}``)."""
        if k <= 0:
            raise KGRecError(f"k must be positive, got {k}")
        u = self.user_index(user)
        scores = self.model.score_all(torch.tensor([u], device=self.device))[0].clone()
        n = self.dataset.n_items
        if exclude_seen:
            seen = self.seen(u)
            scores[torch.as_tensor(seen, dtype=torch.long, device=scores.device)] = -torch.inf
            n -= len(seen)
        top = torch.topk(scores, min(k, n))
        items = top.indices.cpu().numpy()
        label = self.user_label(u)
        recs = [{"rank": r + 1, "user": label, "item_index": int(i), "item": self.item_label(int(i)),
                 "name": self.item_name(int(i)), "score": float(s)}
                for r, (i, s) in enumerate(zip(items, top.values.tolist(), strict=True))]
        if explain:
            for rec, exp in zip(recs, self._explanations(u, items), strict=True):
                rec["explanation"] = exp
        return recs

    def explain(self, user: str | int, item: str | int) -> dict[str, Any]:
        """The model's explanation of one ``(user, item)`` pair."""
        if not self.explains:
            raise KGRecError(f"model {self.model.name!r} has no explanation")
        u, i = self.user_index(user), self.item_index(item)
        return self._explanations(u, np.array([i]))[0]

    def explanations(self, user_index: int, item_indices: np.ndarray) -> list[dict[str, Any]]:
        """Explanations of several items for one user, by internal indices, in one call of
        the model's ``explain`` (a note per item for models without an explanation)."""
        return self._explanations(user_index, np.asarray(item_indices, dtype=np.int64))

    # ---- explanations ---------------------------------------------------------------
    @torch.no_grad()
    def _raw_explanations(self, user: int, items: np.ndarray) -> list[dict[str, Any]]:
        """The model's ``explain(user, items)``: one dict per item."""
        return list(self.model.explain(user, torch.as_tensor(np.asarray(items, dtype=np.int64),
                                                             device=self.device)))

    def _explanations(self, user: int, items: np.ndarray) -> list[dict[str, Any]]:
        """Per item: the model's own explanation with ``lines`` in readable form (entity
        and relation names, URIs shortened; the full names stay in ``fact_names``)."""
        if not self.explains:
            note = f"model {self.model.name!r} has no explanation of its own"
            return [{"available": False, "note": note, "lines": []} for _ in items]
        return [self._readable({k: _plain(v) for k, v in exp.items()})
                for exp in self._raw_explanations(user, items)]

    def _readable(self, exp: dict[str, Any]) -> dict[str, Any]:
        ds = self.dataset
        lines: list[str] = []
        rels = ds.relation_names
        if exp.get("relation") is not None:  # KTUP: the induced preference is a relation
            rel = int(exp["relation"])
            exp["relation_name"] = _name(rels, rel) if rels is not None else None
            lines.append(f"preference: {_shown(rels, rel)} (weight {exp['weight']:.3f})")
        elif exp.get("preference") is not None:  # TUP: a latent preference, no KG
            lines.append(f"latent preference {exp['preference']} (weight {exp['weight']:.3f})")
        facts = exp.get("facts") or []
        if exp.get("relation") is not None and not facts and exp.get("entity") is not None:
            lines.append(f"({_shown(ds.entity_ids, int(exp['entity']))} has no "
                         f"{_shown(rels, int(exp['relation']))} fact)")
        if facts:
            exp["fact_names"] = [[_name(ds.entity_ids, h), _name(rels, r), _name(ds.entity_ids, t)]
                                 for h, r, t in facts]
            lines += [f"fact: {fact_line(ds, h, r, t)}" for h, r, t in facts[:5]]
        if "weights" in exp and "tails" in exp:  # JNSKR: attention over the item's triples
            w = np.asarray(exp["weights"], dtype=float)
            ent = exp.get("entity", -1)
            order = np.argsort(-w, kind="stable")[:5]
            exp["triple_names"] = [[_name(ds.entity_ids, ent), _name(rels, r), _name(ds.entity_ids, t)]
                                   for r, t in zip(exp["relations"], exp["tails"], strict=True)]
            lines += [f"attention {w[k]:.3f}: {fact_line(ds, ent, exp['relations'][k], exp['tails'][k])}"
                      for k in order.tolist()]
        if "user_distribution" in exp:  # HKRM: preference vs attribute importance (Fig. 5)
            fields = [_shown(rels, f) for f in exp["fields"]]
            exp["field_names"] = [_name(rels, f) for f in exp["fields"]]
            for who, key in (("user prefers", "user_distribution"),
                             ("item stands out by", "item_distribution")):
                p = np.asarray(exp[key], dtype=float)
                top = np.argsort(-p, kind="stable")[:3]
                lines.append(f"{who}: " + ", ".join(f"{fields[k]} {p[k]:.2f}" for k in top.tolist()))
            lines.append(f"click probability {exp['probability']:.3f}")
        if exp.get("paths"):  # KGAT: attention-weighted CKG paths from the user to the item
            lines += [f"path: {p['text']}" for p in exp["paths"] if "text" in p]
        if not self.has_names:
            exp["note"] = NO_NAMES
        exp["lines"] = lines
        return exp


def recommend(run_dir: str | Path, user: str | int, k: int = 10, explain: bool = False,
              data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Top-``k`` items for ``user`` among those not in the user's training or validation
    positives, with scores and (optionally) explanations."""
    if k <= 0:
        raise KGRecError(f"k must be positive, got {k}")
    return Recommender.from_run(run_dir, data_dir).recommend(user, k, explain=explain)


def explain_pair(run_dir: str | Path, user: str | int, item: str | int,
                 data_dir: str | Path | None = None) -> tuple[dict[str, Any], Any]:
    """The model's explanation of one ``(user, item)`` pair (e.g. HKRM's distributions,
    with ``lines`` and names added) and the dataset."""
    rec = Recommender.from_run(run_dir, data_dir)
    return rec.explain(user, item), rec.dataset
