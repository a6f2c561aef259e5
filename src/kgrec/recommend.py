"""Recommendations and explanations from a finished run folder (Python API of
``kgrec recommend`` and ``kgrec explain``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgrec.errors import KGRecError
from kgrec.training.experiment import load_run


def resolve_id(value: str | int, names: list[str] | None, n: int, what: str) -> int:
    """Index of ``value``: an original id when the dataset has them (and only then: an
    index is never guessed for a dataset with its own ids), else an index written in ASCII
    digits."""
    text = str(value).strip()
    if names is not None:
        if text and text in names:
            return names.index(text)
        raise KGRecError(f"unknown {what} {value!r}: not one of the dataset's {len(names):,} "
                         f"{what} ids (e.g. {next((x for x in names if x), '')!r})")
    if text.isascii() and text.isdigit() and int(text) < n:
        return int(text)
    raise KGRecError(f"unknown {what} {value!r}: expected an index 0..{n - 1}")


def _name(names: list[str] | None, k: int) -> str:
    return names[k] if names is not None and 0 <= k < len(names) else str(k)


def _fact_lines(dataset, triples) -> list[str]:
    return [f"{_name(dataset.entity_ids, int(h))} --{_name(dataset.relation_names, int(r))}--> "
            f"{_name(dataset.entity_ids, int(t))}" for h, r, t in triples]


def _explanation(model, dataset, user: int, items: np.ndarray) -> list[dict[str, Any]]:
    """Per-item explanation: the model's own ``explain`` when it has one, else the
    item's KG facts."""
    out: list[dict[str, Any]] = []
    if hasattr(model, "explain"):
        params = list(inspect.signature(model.explain).parameters)
        items_t = torch.as_tensor(items)
        with torch.no_grad():
            raw = model.explain(user, items_t) if len(params) >= 2 else model.explain(items_t)
        for exp in raw if isinstance(raw, list) else [raw]:
            exp = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in exp.items()}
            lines = []
            if exp.get("relation") is not None or exp.get("relation_name") is not None:
                rel = exp.get("relation_name") or _name(dataset.relation_names, int(exp["relation"]))
                w = exp.get("weight")
                lines.append(f"preference: {rel}" + (f" (weight {w:.3f})" if w is not None else ""))
            if exp.get("facts"):
                lines += [f"fact: {s}" for s in _fact_lines(dataset, exp["facts"][:5])]
            exp["lines"] = lines
            out.append(exp)
        return out
    for item in items:
        ent = int(dataset.item_entity[item])
        facts = dataset.triples[dataset.triples[:, 0] == ent][:5] if ent >= 0 else []
        out.append({"facts": np.asarray(facts).tolist(),
                    "lines": [f"fact: {s}" for s in _fact_lines(dataset, facts)]})
    return out


def recommend(run_dir: str | Path, user: str | int, k: int = 10, explain: bool = False,
              data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Top-``k`` items for ``user`` among those not in the user's training or validation
    positives, with scores and (optionally) explanations."""
    if k <= 0:
        raise KGRecError(f"k must be positive, got {k}")
    model, dataset, split, _ = load_run(run_dir, data_dir)
    u = resolve_id(user, dataset.user_ids, dataset.n_users, "user")
    seen = np.concatenate([split.train, split.valid])
    seen = seen[(seen[:, 0] == u) & (seen[:, 2] == 1), 1]
    with torch.no_grad():
        scores = model.score_all(torch.tensor([u]))[0].clone()
    scores[torch.as_tensor(seen, dtype=torch.long)] = -torch.inf
    k = min(k, dataset.n_items - len(np.unique(seen)))
    top = torch.topk(scores, k)
    items = top.indices.numpy()
    recs = [{"rank": r + 1, "item_index": int(i), "item": _name(dataset.item_ids, int(i)),
             "score": float(s)} for r, (i, s) in enumerate(zip(items, top.values.tolist(), strict=True))]
    if explain:
        for rec, exp in zip(recs, _explanation(model, dataset, u, items), strict=True):
            rec["explanation"] = exp
    return recs


def explain_pair(run_dir: str | Path, user: str | int, item: str | int,
                 data_dir: str | Path | None = None) -> tuple[dict[str, Any], Any]:
    """The model's explanation of one ``(user, item)`` pair (HKRM's distributions)."""
    model, dataset, _, _ = load_run(run_dir, data_dir)
    if not hasattr(model, "explain"):
        raise KGRecError(f"model {model.name!r} has no explanation")
    u = resolve_id(user, dataset.user_ids, dataset.n_users, "user")
    i = resolve_id(item, dataset.item_ids, dataset.n_items, "item")
    params = list(inspect.signature(model.explain).parameters)
    try:
        with torch.no_grad():  # (user, item) for HKRM, KTUP, TUP; (items) for JNSKR
            exp = model.explain(u, i) if len(params) >= 2 else model.explain([i])
    except KGRecError:
        raise
    except Exception as e:  # noqa: BLE001 - a model that cannot explain this pair
        raise KGRecError(f"model {model.name!r} cannot explain user {user} and item {item}: "
                         f"{e}") from None
    if isinstance(exp, list):
        exp = exp[0] if exp else {}
    return exp, dataset
