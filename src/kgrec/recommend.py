"""Recommendations and explanations from a finished run folder.

:class:`Recommender` holds a loaded run (model, dataset, split) so that many requests are
answered without reloading: it is what ``kgrec recommend``/``kgrec explain``, the Python API
(``kgrec.load``) and ``kgrec serve`` build on. The module-level :func:`recommend` and
:func:`explain_pair` are one-shot wrappers that load the run each call.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.errors import KGRecError


def resolve_id(value: str | int, names: list[str] | None, n: int, what: str) -> int:
    """Index of ``value``: an original id when the dataset has them, else an index."""
    text = str(value)
    if names is not None:
        try:
            return names.index(text)
        except ValueError:
            pass
    if text.isdigit() and int(text) < n:
        return int(text)
    raise KGRecError(f"unknown {what} {value!r}")


def _name(names: list[str] | None, k: int) -> str:
    return names[k] if names is not None and 0 <= k < len(names) else str(k)


def _fact_lines(dataset, triples) -> list[str]:
    return [f"{_name(dataset.entity_ids, int(h))} --{_name(dataset.relation_names, int(r))}--> "
            f"{_name(dataset.entity_ids, int(t))}" for h, r, t in triples]


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


class Recommender:
    """A loaded run, answering recommendation, scoring and explanation requests.

    Users and items are given by the data's own ids (or, for data with integer ids only,
    by index); answers carry both the data's id (``item``) and the internal index
    (``item_index``). Seen items are the user's training and validation positives.
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

    @classmethod
    def from_run(cls, run_dir: str | Path, data_dir: str | Path | None = None) -> Recommender:
        from kgrec.training.experiment import load_run

        model, dataset, split, cfg = load_run(run_dir, data_dir)
        return cls(model, dataset, split, cfg)

    # ---- ids ------------------------------------------------------------------------
    def user_index(self, user: str | int) -> int:
        return resolve_id(user, self.dataset.user_ids, self.dataset.n_users, "user")

    def item_index(self, item: str | int) -> int:
        return resolve_id(item, self.dataset.item_ids, self.dataset.n_items, "item")

    def user_label(self, index: int) -> str:
        return _name(self.dataset.user_ids, index)

    def item_label(self, index: int) -> str:
        return _name(self.dataset.item_ids, index)

    def seen(self, user_index: int) -> np.ndarray:
        """Items of the user's training and validation positives."""
        return self._seen_items[self._seen_ptr[user_index]:self._seen_ptr[user_index + 1]]

    # ---- scoring --------------------------------------------------------------------
    @property
    def explains(self) -> bool:
        """Whether the model has an explanation of its own."""
        return hasattr(self.model, "explain")

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
        scores and, optionally, explanations."""
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
        recs = [{"rank": r + 1, "item_index": int(i), "item": self.item_label(int(i)),
                 "score": float(s)} for r, (i, s) in enumerate(zip(items, top.values.tolist(), strict=True))]
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

    # ---- explanations ---------------------------------------------------------------
    @torch.no_grad()
    def _raw_explanations(self, user: int, items: np.ndarray) -> list[dict[str, Any]]:
        model = self.model
        params = list(inspect.signature(model.explain).parameters)
        if len(params) < 2:  # explain(items)
            return list(model.explain(torch.as_tensor(items)))
        try:
            raw = model.explain(user, torch.as_tensor(items))
        except (TypeError, ValueError, RuntimeError):  # explain(user, item) of one item
            raw = [model.explain(user, int(i)) for i in items]
        return raw if isinstance(raw, list) else [raw]

    def _explanations(self, user: int, items: np.ndarray) -> list[dict[str, Any]]:
        """Per item: the model's own explanation when it has one, else the item's KG facts;
        ``lines`` holds a readable form."""
        dataset = self.dataset
        if not self.explains:
            out = []
            for item in items:
                ent = int(dataset.item_entity[item])
                facts = dataset.triples[dataset.triples[:, 0] == ent][:5] if ent >= 0 else []
                out.append({"facts": np.asarray(facts).tolist(),
                            "lines": [f"fact: {s}" for s in _fact_lines(dataset, facts)]})
            return out
        out = []
        for exp in self._raw_explanations(user, items):
            exp = {k: _plain(v) for k, v in exp.items()}
            lines = []
            if exp.get("relation") is not None or exp.get("relation_name") is not None:
                rel = exp.get("relation_name") or _name(dataset.relation_names, int(exp["relation"]))
                w = exp.get("weight")
                lines.append(f"preference: {rel}" + (f" (weight {w:.3f})" if w is not None else ""))
            if exp.get("facts"):
                lines += [f"fact: {s}" for s in _fact_lines(dataset, exp["facts"][:5])]
            lines += [f"path: {p['text']}" for p in exp.get("paths") or [] if "text" in p]
            exp["lines"] = lines
            out.append(exp)
        return out


def recommend(run_dir: str | Path, user: str | int, k: int = 10, explain: bool = False,
              data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Top-``k`` items for ``user`` among those not in the user's training or validation
    positives, with scores and (optionally) explanations."""
    if k <= 0:
        raise KGRecError(f"k must be positive, got {k}")
    return Recommender.from_run(run_dir, data_dir).recommend(user, k, explain=explain)


def explain_pair(run_dir: str | Path, user: str | int, item: str | int,
                 data_dir: str | Path | None = None) -> tuple[dict[str, Any], Any]:
    """The model's explanation of one ``(user, item)`` pair (HKRM's distributions)."""
    rec = Recommender.from_run(run_dir, data_dir)
    if not rec.explains:
        raise KGRecError(f"model {rec.model.name!r} has no explanation")
    u, i = rec.user_index(user), rec.item_index(item)
    with torch.no_grad():
        exp = rec.model.explain(u, i)
    return exp, rec.dataset
