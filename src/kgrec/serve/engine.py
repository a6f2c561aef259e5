"""A served run: a :class:`~kgrec.recommend.Recommender` plus everything precomputed once.

What is computed at load time, per model (``score(u, i) = combine(U[u], V[i])``):

* dot-product models: ``U`` and ``V`` such that ``score_all = U @ V.T`` exactly
  (BPRMF ``u, i``; CKE ``u, i + e``; MKR with ``inner_product`` ``u_L, v_L`` (Eq. 4-6);
  JNSKR ``u * h, q_v`` (Eq. 6-9); HKRM the query and target representations (Eq. 10);
  FM and CoFM with their bias terms folded into two extra columns);
* MKR with an MLP ``f_RS``: ``u_L`` and ``v_L`` cached, the MLP runs on the request;
* TUP/KTUP: user vectors and ``i_hat`` cached (Eq. 18), the preference induction and
  hyperplane distance (Eq. 8-14) run on the request (the score does not factorise);
* CFKG: ``u + r_buy`` and ``i + e`` cached, the L1/L2 distance runs on the request;
* any other model: no cache; ``model.score_all``/``model.score`` run on the request.

The *item representation* used by :meth:`Engine.similar` (cosine similarity) is ``V``
above; for KG-only models (TransE/H/R) it is the aligned entity's embedding; for models
without a cache it is the item's column of scores over (at most 1,024 evenly spaced)
users, its "score profile". Every answer carries the data's own ids and names.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kgrec.errors import KGRecError
from kgrec.recommend import IdIndex, Recommender, fact_line

PROFILE_USERS = 1024


class NotFound(KGRecError):
    """An unknown user, item, entity, relation or run (HTTP 404)."""


class Unsupported(KGRecError):
    """The run's model cannot answer this request (HTTP 422)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class Plan:
    """Cached user/item representations and how they combine into scores."""

    def __init__(self, kind: str, U: Tensor | None, V: Tensor | None, similarity: str,
                 combine=None, pair=None) -> None:
        self.kind, self.similarity = kind, similarity
        self.U = None if U is None else U.detach()
        self.V = None if V is None else V.detach()
        self._combine, self._pair = combine, pair

    def all(self, u: Tensor) -> Tensor:
        """Scores ``(B, n_items)`` of cached user vectors ``u``."""
        return u @ self.V.T if self._combine is None else self._combine(u, self.V)

    def pairs(self, u: Tensor, v: Tensor) -> Tensor:
        return (u * v).sum(-1) if self._pair is None else self._pair(u, v)


def _make_plan(model, n_users: int, n_items: int) -> Plan:
    name = getattr(model, "name", type(model).__name__)
    users = torch.arange(n_users)
    items = torch.arange(n_items)
    if name == "bprmf":
        return Plan("dot", model.user_emb.weight, model.item_emb.weight, "item embedding i")
    if name == "cke":
        return Plan("dot", model.user_emb.weight, model.item_vectors(items), "i + e (item + entity)")
    if name == "mkr":
        U, V = model.user_latent(users), model.item_latent(items)
        if model.inner_product:
            return Plan("dot", U, V, "v_L, the item after the cross&compress units (Eq. 5)")

        def mlp_all(u, v):
            b, n = len(u), len(v)
            return model._f_rs(u[:, None].expand(b, n, -1), v[None].expand(b, n, -1))

        return Plan("mlp", U, V, "v_L, the item after the cross&compress units (Eq. 5)",
                    combine=mlp_all, pair=model._f_rs)
    if name == "jnskr":
        return Plan("dot", model.user_emb.weight * model.h, model.all_item_repr(),
                    "q_v = e_v + attention-weighted tails (Eq. 6-8)")
    if name.startswith("hkrm"):
        return Plan("dot", model.representation(model.query_side(users)),
                    model.item_representations(), "HKRM target representation (Eq. 10)")
    if name == "fm":
        s, q, lin = model.item_side(items)
        const = model.bias + lin + 0.5 * (s.pow(2).sum(-1) - q)
        ub = model.user_bias(users)
        U = torch.cat([model.user_emb.weight, ub, torch.ones_like(ub)], 1)
        V = torch.cat([s, torch.ones_like(const)[:, None], const[:, None]], 1)
        return Plan("dot", U, V, "summed item and KG-entity factors s_i plus bias columns")
    if name == "cofm":
        ub = model.user_bias(users) + model.bias
        U = torch.cat([model.user_emb.weight, ub, torch.ones_like(ub)], 1)
        V = torch.cat([model.item_vectors(items), torch.ones(n_items, 1), model.item_bias.weight], 1)
        return Plan("dot", U, V, "item vector plus bias columns")
    if name in ("tup", "ktup"):
        return _translation_plan(model, name)
    if name == "cfkg":
        from kgrec.models.transe import pairwise_distance, transe_distance

        U = model.user_emb.weight + model.buy_emb.weight
        return Plan("translation", U, model.item_vectors(items), "i + e (item + entity)",
                    combine=lambda u, v: -pairwise_distance(u, v, model.norm),
                    pair=lambda u, v: -transe_distance(u, torch.zeros_like(u), v, model.norm))
    return Plan("model", None, None, "")


def _translation_plan(model, name: str) -> Plan:
    """TUP/KTUP (Eq. 8-14) with the preference tables and item vectors computed once; per
    request the distances of the user to every item come from
    :func:`kgrec.models.tup.translation_distances` (the model's ``score_all`` path)."""
    from kgrec.models.tup import translation_distances

    prefs, normals = (t.detach() for t in model.preference_tables())
    V = model.all_items().detach()

    def all_items(u: Tensor, v: Tensor) -> Tensor:
        return -translation_distances(u, v, prefs, normals, model.induction == "hard",
                                      model.norm, model.chunk_elems)

    return Plan("translation", model.user_emb.weight, V,
                "i_hat = i + e (Eq. 18)" if name == "ktup" else "item embedding i",
                combine=all_items, pair=lambda u, v: -model.pair_distance(u, v))


class Engine:
    """One loaded run answering the HTTP API's requests."""

    def __init__(self, rec: Recommender, name: str, run_dir: Path | None = None,
                 load_seconds: float = 0.0) -> None:
        t0 = time.perf_counter()
        self.rec, self.name, self.run_dir = rec, name, run_dir
        self.model, self.dataset = rec.model.eval(), rec.dataset
        ds = self.dataset
        self.n_users, self.n_items = ds.n_users, ds.n_items
        self._entities = IdIndex(ds.entity_ids, ds.n_entities, "entity")
        self._relations = IdIndex(ds.relation_names, ds.n_relations, "relation")
        self.entity_item = ds.entity_items()
        with torch.inference_mode():
            self.plan = _make_plan(self.model, self.n_users, self.n_items)
            self.recommends = self._can_recommend()
            self.item_vectors = self._item_vectors()
        self.completes = hasattr(self.model, "score_tails") and hasattr(self.model, "score_heads")
        self.score_kind = "probability" if getattr(self.model, "ctr_output", False) else "score"
        # triples by head and by tail, for an entity's KG neighbours
        t = ds.triples
        self._by_head = t[np.argsort(t[:, 0], kind="stable")]
        self._by_tail = t[np.argsort(t[:, 2], kind="stable")]
        self._known = set(map(tuple, t.tolist())) if len(t) <= 2_000_000 else None
        self.metrics = self._metrics()
        self.similarity = self.plan.similarity or (
            "aligned entity's embedding" if not self.recommends
            else f"score profile over up to {PROFILE_USERS} users")
        self.load_seconds = load_seconds + time.perf_counter() - t0

    @classmethod
    def load(cls, run_dir: str | Path, data_dir: str | Path | None = None,
             name: str | None = None) -> Engine:
        run_dir = Path(run_dir)
        t0 = time.perf_counter()
        rec = Recommender.from_run(run_dir, data_dir)
        return cls(rec, name or run_dir.name, run_dir, time.perf_counter() - t0)

    # ---- set-up ---------------------------------------------------------------------
    def _can_recommend(self) -> bool:
        if self.plan.kind != "model":
            return True
        try:
            self.model.score_all(torch.zeros(1, dtype=torch.long))
        except NotImplementedError:
            return False
        return True

    def _item_vectors(self) -> Tensor | None:
        if self.plan.V is not None:
            v = self.plan.V
        elif not self.recommends:
            emb = getattr(self.model, "entity_emb", None)
            if emb is None:
                return None
            ent = torch.as_tensor(self.dataset.item_entity)
            v = emb.weight[ent.clamp_min(0)] * (ent >= 0).unsqueeze(-1).to(emb.weight)
        else:  # score profile over evenly spaced users
            users = torch.as_tensor(np.unique(np.linspace(0, self.n_users - 1, min(
                self.n_users, PROFILE_USERS)).astype(np.int64)))
            v = self.model.score_all(users).T
            v = v - v.mean(1, keepdim=True)
        return F.normalize(v.float(), dim=1)

    def _metrics(self) -> dict[str, Any]:
        if self.run_dir is None or not (self.run_dir / "metrics.json").is_file():
            return {}
        try:
            m = json.loads((self.run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            return {}
        return _jsonable({k: m[k] for k in ("test", "topk", "kg", "valid", "epochs", "best_epoch",
                                             "train_seconds") if k in m})

    def info(self) -> dict[str, Any]:
        cfg = self.rec.cfg
        return {
            "run": self.name,
            "model": getattr(self.model, "name", type(self.model).__name__),
            "dataset": cfg.data.dataset if cfg else self.dataset.name,
            "protocols": list(cfg.eval.protocols) if cfg else [],
            "seed": cfg.seed if cfg else None,
            "users": self.n_users, "items": self.n_items,
            "entities": self.dataset.n_entities, "relations": self.dataset.n_relations,
            "relation_ids": [self.relation_label(r) for r in range(self.dataset.n_relations)],
            "score": self.score_kind,
            "recommends": self.recommends, "explains": self.rec.explains,
            "completes": self.completes,
            "similarity": self.similarity,
            "cached": self.plan.kind,
            "load_seconds": round(self.load_seconds, 3),
            "metrics": self.metrics,
        }

    # ---- ids ------------------------------------------------------------------------
    @staticmethod
    def _resolve(index: IdIndex, value: str | int) -> int:
        """The data's own id when it has ids, else an index (:class:`IdIndex`); 404."""
        try:
            return index(value)
        except KGRecError as e:
            raise NotFound(str(e)) from None

    def user_index(self, user: str | int) -> int:
        return self._resolve(self.rec.user_index, user)

    def item_index(self, item: str | int) -> int:
        return self._resolve(self.rec.item_index, item)

    def entity_index(self, entity: str | int) -> int:
        return self._resolve(self._entities, entity)

    def relation_index(self, relation: str | int) -> int:
        return self._resolve(self._relations, relation)

    def user_label(self, u: int) -> str:
        return self.rec.user_label(u)

    def item_label(self, i: int) -> str:
        return self.rec.item_label(i)

    def entity_label(self, e: int) -> str:
        names = self.dataset.entity_ids
        return names[e] if names is not None else str(e)

    def relation_label(self, r: int) -> str:
        names = self.dataset.relation_names
        return names[r] if names is not None else str(r)

    def users(self, offset: int = 0, limit: int = 100, query: str = "") -> list[str]:
        labels = (self.dataset.user_ids if self.dataset.user_ids is not None
                  else [str(u) for u in range(self.n_users)])
        if query:
            labels = [x for x in labels if query.lower() in x.lower()]
        return labels[offset:offset + limit]

    def items(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Items in index order: the data's id, display name and KG entity (or ``None``)."""
        out = []
        for i in range(offset, min(offset + limit, self.n_items)):
            ent = self.item_entity(i)
            out.append({"item": self.item_label(i), "name": self.rec.item_name(i),
                        "entity": self.entity_label(ent) if ent >= 0 else None})
        return out

    # ---- scoring --------------------------------------------------------------------
    def _need_recommend(self) -> None:
        if not self.recommends:
            raise Unsupported(f"run {self.name!r} ({self.model.name}) is a KG model without "
                              "user-item scores")

    def _scores_all(self, users: np.ndarray) -> Tensor:
        u = torch.as_tensor(users, dtype=torch.long)
        if self.plan.kind == "model":
            return self.model.score_all(u)
        return self.plan.all(self.plan.U[u])

    def _to_output(self, s: Tensor) -> Tensor:
        return torch.sigmoid(s) if getattr(self.model, "ctr_output", False) else s

    def score_pairs(self, users: list[str | int], items: list[str | int]) -> list[float]:
        """Probabilities (CTR models) or ranking scores of ``(users[k], items[k])``."""
        self._need_recommend()
        u = torch.as_tensor([self.user_index(x) for x in users], dtype=torch.long)
        i = torch.as_tensor([self.item_index(x) for x in items], dtype=torch.long)
        with torch.inference_mode():
            if self.plan.kind == "model":
                s = self.model.score(u, i)
            else:
                s = self.plan.pairs(self.plan.U[u], self.plan.V[i])
            return self._to_output(s).tolist()

    def recommend_many(self, users: list[str | int], k: int = 10, exclude_seen: bool = True,
                       explain: bool = False) -> list[list[dict[str, Any]]]:
        """Top-``k`` items of each user, scores as :meth:`score_pairs` gives them."""
        self._need_recommend()
        if k <= 0:
            raise KGRecError(f"k must be positive, got {k}")
        idx = np.array([self.user_index(x) for x in users], dtype=np.int64)
        with torch.inference_mode():
            scores = self._scores_all(idx).clone()
            counts = np.full(len(idx), self.n_items)
            if exclude_seen:
                seen = [self.rec.seen(int(u)) for u in idx]
                rows = np.repeat(np.arange(len(idx)), [len(s) for s in seen])
                cols = np.concatenate(seen) if seen else np.zeros(0, np.int64)
                scores[torch.as_tensor(rows), torch.as_tensor(cols, dtype=torch.long)] = -torch.inf
                counts -= np.array([len(s) for s in seen], dtype=np.int64)
            top = torch.topk(scores, min(k, self.n_items), dim=1)
            values = self._to_output(top.values).tolist()
            indices = top.indices.tolist()
        out = []
        for row, (u, items, vals) in enumerate(zip(idx, indices, values, strict=True)):
            n = int(min(k, counts[row]))
            recs = [{"rank": r + 1, "item": self.item_label(i), "name": self.rec.item_name(i),
                     "item_index": i, "score": v}
                    for r, (i, v) in enumerate(zip(items[:n], vals[:n], strict=True))]
            if explain:
                exps = self.explanations(int(u), [r["item_index"] for r in recs])
                for rec, exp in zip(recs, exps, strict=True):
                    rec["explanation"] = exp
            out.append(recs)
        return out

    # ---- explanations ---------------------------------------------------------------
    def explain(self, user: str | int, item: str | int) -> dict[str, Any]:
        u, i = self.user_index(user), self.item_index(item)
        out = {"user": self.user_label(u), "item": self.item_label(i), "item_index": i}
        if self.recommends:
            out["score"] = self.score_pairs([self.user_label(u)], [self.item_label(i)])[0]
        out["explanation"] = self.explanation(u, i)
        return out

    def explanation(self, u: int, i: int) -> dict[str, Any]:
        return self.explanations(u, [i])[0]

    def explanations(self, u: int, items: list[int]) -> list[dict[str, Any]]:
        """Per item: the model's own explanation (KTUP preference, JNSKR attention, HKRM
        distributions), computed for all ``items`` in one call, or the item's KG facts for
        models without one; ``lines`` reads it."""
        if self.rec.explains:
            with torch.inference_mode():
                raw = self.rec.explanations(u, np.asarray(items, dtype=np.int64))
            out = []
            for exp in raw:
                exp = _jsonable(exp)
                exp.setdefault("lines", [])
                exp.setdefault("source", "model")
                out.append(self._named(exp))
            return out
        note = (f"model {self.model.name!r} has no explanation of its own; these are "
                "the item's KG facts")
        out = []
        for i in items:
            facts = self.neighbours(i, limit=5)
            out.append({"available": False, "source": "kg facts of the item", "note": note,
                        "facts": facts, "lines": [f"fact: {f['line']}" for f in facts]})
        return out

    def _named(self, exp: dict[str, Any]) -> dict[str, Any]:
        """Internal indices of an explanation replaced by the data's ids (indices kept
        under ``*_index``), KG facts as ``{head, relation, tail}`` with names."""
        if isinstance(exp.get("item"), int):
            exp["item_index"] = exp["item"]
            exp["item"] = self.item_label(exp["item"])
        ent = exp.get("entity")
        if isinstance(ent, int):
            exp["entity_index"] = ent
            exp["entity"] = self.entity_label(ent) if ent >= 0 else None
        if isinstance(exp.get("relation"), int):
            exp.setdefault("relation_name", self.relation_label(exp["relation"]))
        if isinstance(exp.get("relations"), list) and isinstance(exp.get("tails"), list):
            exp["relation_names"] = [self.relation_label(int(r)) for r in exp["relations"]]
            exp["tail_entities"] = [self.entity_label(int(t)) for t in exp["tails"]]
        facts = exp.get("facts")
        if isinstance(facts, list) and all(isinstance(f, list) and len(f) == 3
                                           and all(isinstance(x, int) for x in f) for f in facts):
            exp["facts"] = [self._fact(*f) for f in facts]
        return exp

    # ---- items and the KG -----------------------------------------------------------
    def item_entity(self, i: int) -> int:
        return int(self.dataset.item_entity[i])

    def neighbours(self, i: int, limit: int = 50) -> list[dict[str, Any]]:
        """KG triples with the item's entity as head or tail (data ids and names)."""
        ent = self.item_entity(i)
        if ent < 0:
            return []
        rows = []
        for table, col in ((self._by_head, 0), (self._by_tail, 2)):
            lo, hi = np.searchsorted(table[:, col], [ent, ent + 1])
            rows.append(table[lo:hi])
        trip = np.concatenate(rows)[:limit]
        return [self._fact(int(h), int(r), int(t)) for h, r, t in trip]

    def _fact(self, h: int, r: int, t: int) -> dict[str, Any]:
        out = {"head": self.entity_label(h), "relation": self.relation_label(r),
               "tail": self.entity_label(t), "line": fact_line(self.dataset, h, r, t)}
        for side, e in (("head_item", h), ("tail_item", t)):
            if self.entity_item[e] >= 0:
                out[side] = self.item_label(int(self.entity_item[e]))
        return out

    def item(self, item: str | int, limit: int = 50) -> dict[str, Any]:
        i = self.item_index(item)
        ent = self.item_entity(i)
        return {"item": self.item_label(i), "item_index": i, "name": self.rec.item_name(i),
                "entity": self.entity_label(ent) if ent >= 0 else None,
                "neighbours": self.neighbours(i, limit)}

    def similar(self, item: str | int, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` items with the most cosine-similar item representation."""
        if k <= 0:
            raise KGRecError(f"k must be positive, got {k}")
        i = self.item_index(item)
        if self.item_vectors is None:
            raise Unsupported(f"run {self.name!r} has no item representation")
        with torch.inference_mode():
            sim = self.item_vectors @ self.item_vectors[i]
            sim[i] = -torch.inf
            top = torch.topk(sim, min(k, self.n_items - 1))
        return [{"rank": r + 1, "item": self.item_label(j), "name": self.rec.item_name(j),
                 "item_index": j, "similarity": s}
                for r, (j, s) in enumerate(zip(top.indices.tolist(), top.values.tolist(),
                                               strict=True))]

    def complete(self, relation: str | int, head: str | int | None = None,
                 tail: str | int | None = None, k: int = 10) -> list[dict[str, Any]]:
        """KG completion: the ``k`` best tails of ``(head, relation, ?)`` or heads of
        ``(?, relation, tail)`` by the model's own triple score (as the kg protocol of
        :mod:`kgrec.evaluation.kg` ranks them); ``known`` marks triples in the data's KG."""
        if not self.completes:
            raise Unsupported(f"run {self.name!r} ({self.model.name}) does not do KG completion")
        if (head is None) == (tail is None):
            raise KGRecError("give exactly one of head and tail")
        if k <= 0:
            raise KGRecError(f"k must be positive, got {k}")
        r = self.relation_index(relation)
        anchor = self.entity_index(head if head is not None else tail)
        a, rel = torch.tensor([anchor]), torch.tensor([r])
        with torch.inference_mode():
            scores = (self.model.score_tails(a, rel) if head is not None
                      else self.model.score_heads(rel, a))[0]
            top = torch.topk(scores, min(k, len(scores)))
        out = []
        for rank, (e, s) in enumerate(zip(top.indices.tolist(), top.values.tolist(), strict=True)):
            trip = (anchor, r, e) if head is not None else (e, r, anchor)
            row = {"rank": rank + 1, "entity": self.entity_label(e), "score": s,
                   "known": None if self._known is None else trip in self._known}
            if self.entity_item[e] >= 0:
                row["item"] = self.item_label(int(self.entity_item[e]))
            out.append(row)
        return out

    # ---- export ---------------------------------------------------------------------
    def embeddings(self) -> dict[str, np.ndarray]:
        """Arrays for an external ANN index: ``users``/``items`` (``score = users @ items.T``
        exactly when ``scoring`` is ``"dot"``), ids, and the KG embeddings a model has."""
        out: dict[str, np.ndarray] = {
            "user_ids": np.array([self.user_label(u) for u in range(self.n_users)]),
            "item_ids": np.array([self.item_label(i) for i in range(self.n_items)]),
            "scoring": np.array(self.plan.kind),
            "model": np.array(getattr(self.model, "name", "")),
        }
        if self.plan.U is not None:
            out["users"] = self.plan.U.detach().float().numpy()
            out["items"] = self.plan.V.detach().float().numpy()
        elif self.item_vectors is not None:
            out["items"] = self.item_vectors.numpy()
        for attr, key in (("entity_emb", "entities"), ("relation_emb", "relations")):
            emb = getattr(self.model, attr, None)
            if isinstance(emb, torch.nn.Embedding):
                n = self.dataset.n_entities if key == "entities" else self.dataset.n_relations
                out[key] = emb.weight.detach().float().numpy()[:n]  # JNSKR has a padding row
        if "entities" in out:
            out["entity_ids"] = np.array([self.entity_label(e) for e in range(len(out["entities"]))])
        if "relations" in out:
            out["relation_names"] = np.array([self.relation_label(r)
                                              for r in range(len(out["relations"]))])
        return out
