"""KTUP: knowledge-enhanced TUP jointly trained with TransH (KTUP paper, Section 5).

* Item enhancement (Eq. 16-18): ``i_hat = i + e`` for an item aligned with entity ``e``;
  items without an entity keep ``i``. The KG task uses the plain entity embeddings.
* Preferences = relations (Eq. 19-20): one preference per relation, ``p_hat = p + r`` and
  ``w_hat = w_p + w_r`` where ``r``/``w_r`` are TransH's translation and normal of the
  relation (the authors' code averages them, ``(p + r) / 2``; we follow the equations).
  The similarity of Eq. 8 and the mixing of Eq. 9/14 use ``p_hat``/``w_hat``.
  ``mixing="authors"`` takes the authors' ``getPreferences`` (``jTransUP.py``) instead:
  ``p_hat = (p + r) / 2``, ``w_hat = (w_p + w_r) / 2``, logits ``(u + i_hat)^T p_hat`` used
  raw as the soft weights, the unnormalised mixed normal (see :mod:`kgrec.models.tup`).
* KG task: TransH (Eq. 1-4) on ``entity_emb``, ``relation_emb``, ``norm_emb`` with the
  corruption choice and soft constraints of :mod:`kgrec.models.transe` /
  :mod:`kgrec.models.transh`; ``score_tails``/``score_heads`` rank entities for completion.
* Joint loss (Eq. 21) ``L = lambda L_p + (1 - lambda) L_k``, one objective: with
  ``joint_weighting="loss"`` (default) ``forward`` returns ``lambda * L_p`` for ``rec`` and
  ``(1 - lambda) * L_k`` for ``kg`` (the only place lambda is applied;
  :meth:`task_weights` reports it), and ``train.joint: true`` sums one rec batch and one KG
  batch per step under one optimiser, so only then is each step one optimiser step on the
  gradient of Eq. 21 (under Adam, an Adam step on it: lambda sets the two losses' relative
  weight, which one shared Adam keeps). With a separate Adam per task lambda would do
  nothing (Adam ignores a constant factor on a loss; lambda 0.05 / 0.3 / 0.7 gave the same
  run), and the experiment warns. The authors' code
  instead realises lambda as the share of steps (``10 lambda`` rec steps in every 10):
  ``joint_weighting="steps"`` returns the unweighted losses and a schedule such as
  ``[[rec, 7], [kg, 3]]`` (alternating, ``train.joint: false``) gives that reading (the
  experiment warns when the schedule's shares differ from lambda, :meth:`step_shares`).
* Warm start (Section 6.3): in a run config, the top-level ``init_from`` (any model,
  :meth:`kgrec.models.base.Model.load_pretrained`); the constructor's ``pretrained`` does
  the same for a model built in Python (give one of the two). Each names kgrec checkpoints
  (``{"model": state_dict, ...}``, loaded with ``weights_only=True``); every tensor whose
  name and shape match one of KTUP's parameters is copied: ``user_emb.weight``,
  ``item_emb.weight`` (BPRMF, TUP), ``entity_emb.weight``, ``relation_emb.weight`` (TransE,
  TransH), ``norm_emb.weight`` (TransH), ``pref_emb.weight``/``pref_norm_emb.weight`` (TUP
  trained with ``n_preferences`` = number of relations). Other names are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.transe import init_embedding, relation_head_prob
from kgrec.models.transh import TransH
from kgrec.models.tup import PreferenceTranslation, _check_induction


@register_model("ktup", paper="Cao et al., WWW 2019 (KTUP)")
class KTUP(PreferenceTranslation, TransH):
    """KTUP: TUP over entity-enhanced items and relation-aligned preferences, plus TransH."""

    tasks: ClassVar[tuple[str, ...]] = ("rec", "kg")
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr", "kg": "triples"}
    authors_logit_scale: ClassVar[float] = 1.0  # the authors halve p + r instead

    def __init__(self, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 dim: int = 100, induction: Literal["hard", "soft"] = "soft",
                 joint_lambda: float = 0.5, joint_weighting: Literal["loss", "steps"] = "loss",
                 margin: float = 1.0, norm: int = 1, tau: float = 1.0,
                 corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, l2: float = 0.0,
                 item_entity: Sequence[int] | np.ndarray | None = None,
                 triples: np.ndarray | None = None, relation_names: list[str] | None = None,
                 head_prob: np.ndarray | None = None, pretrained: str | list[str] | None = None,
                 preserve_warm_scores: bool = False,
                 mixing: Literal["paper", "authors"] = "paper",
                 chunk_elems: int = 1 << 18) -> None:
        TransH.__init__(self, n_entities, n_relations, dim, margin, norm, corrupt,
                        soft_constraint, head_prob, n_users, n_items)
        _check_induction(induction, tau, norm, mixing)
        self.mixing = mixing
        if not 0.0 <= joint_lambda <= 1.0:
            raise ConfigError(f"joint_lambda must be in [0, 1], got {joint_lambda}")
        if joint_weighting not in ("loss", "steps"):
            raise ConfigError(f"joint_weighting must be 'loss' or 'steps', got {joint_weighting!r}")
        self.induction, self.tau = induction, float(tau)
        self.joint_lambda, self.joint_weighting = float(joint_lambda), joint_weighting
        self.l2, self.chunk_elems = float(l2), int(chunk_elems)
        self.n_preferences = n_relations
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.pref_emb = init_embedding(n_relations, dim)
        self.pref_norm_emb = init_embedding(n_relations, dim)
        ie = np.full(n_items, -1) if item_entity is None else np.asarray(item_entity)
        if ie.shape != (n_items,) or (ie >= n_entities).any():
            raise ConfigError("item_entity needs one entity id (or -1) per item")
        self.register_buffer("item_entity", torch.as_tensor(ie, dtype=torch.long),
                             persistent=False)
        self.triples = (np.zeros((0, 3), np.int64) if triples is None
                        else np.asarray(triples, np.int64).reshape(-1, 3))
        self.relation_names = relation_names
        self.loaded: dict[str, list[str]] = {}
        self.preserve_warm_scores = bool(preserve_warm_scores)
        self._warm_offsets_applied = False
        for path in [pretrained] if isinstance(pretrained, str) else (pretrained or []):
            self.load_pretrained(path)
        if pretrained:
            self.finish_warm_start()

    def finish_warm_start(self) -> None:
        """With ``preserve_warm_scores``, once the warm-start tables are loaded, subtract the
        KG part that Eq. 18-20 add wherever both sides of a sum were loaded:
        ``i = i_warm - e`` (``item_emb`` and ``entity_emb``), ``p = p_TUP - r``
        (``pref_emb`` and ``relation_emb``), ``w_p = w_TUP - w_r`` (``pref_norm_emb`` and
        ``norm_emb``). From TUP + TransH (the authors' ``ktup.sh``) ``i_hat``, ``p_hat`` and
        ``w_hat`` then start as TUP's vectors and the first scores are the TUP checkpoint's;
        from BPRMF + TransE/TransH (Section 6.3's "pretrained embeddings of the basic
        model") the items start as BPRMF's and the preferences as ``random + r``. A plain
        copy (the authors') starts from ``i_warm + e`` instead, a perturbed model. Our
        choice, off by default; needs at least the item and entity tables loaded. Under
        ``mixing="authors"`` (TUP's logits ``x^T p / 2`` and mixture ``phi p``, KTUP's
        ``x^T p_hat`` and ``phi p_hat`` with ``p_hat = (p + r) / 2``), the scores are kept by
        ``p_hat = p_TUP / sqrt 2`` and ``w_hat = w_TUP / sqrt 2``: ``p = sqrt 2 p_TUP - r``,
        ``w_p = sqrt 2 w_TUP - w_r``."""
        if not self.preserve_warm_scores:
            return
        if self._warm_offsets_applied:  # pretrained and init_from both given: not twice
            raise ConfigError("preserve_warm_scores: give the warm-start checkpoints once "
                              "(model_args.pretrained or init_from, not both)")
        names = {n for done in self.loaded.values() for n in done}
        if not {"item_emb.weight", "entity_emb.weight"} <= names:
            raise ConfigError("preserve_warm_scores needs a recommender's item table and a KG "
                              "model's entity table loaded (e.g. TUP + TransH, BPRMF + TransE); "
                              f"loaded: {', '.join(sorted(names)) or 'nothing'}")
        scale = 2.0 ** 0.5 if self.mixing == "authors" else 1.0
        with torch.no_grad():
            aligned = self.item_entity >= 0
            self.item_emb.weight[aligned] -= self.entity_emb.weight[self.item_entity[aligned]]
            if {"pref_emb.weight", "relation_emb.weight"} <= names:
                self.pref_emb.weight.mul_(scale).sub_(self.relation_emb.weight)
            if {"pref_norm_emb.weight", "norm_emb.weight"} <= names:
                self.pref_norm_emb.weight.mul_(scale).sub_(self.norm_emb.weight)
        self._warm_offsets_applied = True

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        triples = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
        if kwargs.get("corrupt") == "bern":
            kwargs["head_prob"] = relation_head_prob(triples, dataset.n_relations)
        return cls(n_users=dataset.n_users, n_items=dataset.n_items,
                   n_entities=dataset.n_entities, n_relations=dataset.n_relations,
                   item_entity=dataset.item_entity, triples=triples,
                   relation_names=dataset.relation_names, **kwargs)

    # --- Eq. 17-20 ----------------------------------------------------------------------
    def item_vectors(self, items: Tensor) -> Tensor:
        """``i_hat = i + e`` for aligned items, ``i`` otherwise (Eq. 18)."""
        ent = self.item_entity[items]
        e = self.entity_emb(ent.clamp_min(0)) * (ent >= 0).unsqueeze(-1).to(self.item_emb.weight)
        return self.item_emb(items) + e

    def all_items(self) -> Tensor:
        return self.item_vectors(torch.arange(self.n_items, device=self.item_entity.device))

    def preference_tables(self) -> tuple[Tensor, Tensor]:
        """``p_hat = p + r`` and ``w_hat = w_p + w_r`` for every relation (Eq. 19-20;
        halved under the authors' mixing)."""
        p = self.pref_emb.weight + self.relation_emb.weight
        w = self.pref_norm_emb.weight + self.norm_emb.weight
        return (p / 2, w / 2) if self.mixing == "authors" else (p, w)

    def task_weights(self) -> dict[str, float]:
        """``{rec: lambda, kg: 1 - lambda}`` under ``joint_weighting="loss"`` (Eq. 21)."""
        if self.joint_weighting != "loss":
            return {}
        return {"rec": self.joint_lambda, "kg": 1.0 - self.joint_lambda}

    def step_shares(self) -> dict[str, float]:
        """``{rec: lambda, kg: 1 - lambda}`` under ``joint_weighting="steps"``."""
        if self.joint_weighting != "steps":
            return {}
        return {"rec": self.joint_lambda, "kg": 1.0 - self.joint_lambda}

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        weighted = self.joint_weighting == "loss"
        if task == "rec":
            loss = self.rec_loss(batch)
            return self.joint_lambda * loss if weighted else loss
        if task == "kg":
            loss = self.kg_loss(batch)
            return (1.0 - self.joint_lambda) * loss if weighted else loss
        raise ValueError(f"ktup has no task {task!r}")

    # --- explanations (Section 6.7) -----------------------------------------------------
    def facts(self, entity: int, relation: int,
              limit: int | None = None) -> list[tuple[int, int, int]]:
        """Training triples ``(h, r, t)`` with ``entity`` as head or tail under ``relation``."""
        if entity < 0 or len(self.triples) == 0:
            return []
        t = self.triples
        rows = np.flatnonzero((t[:, 1] == relation) & ((t[:, 0] == entity) | (t[:, 2] == entity)))
        rows = rows[:limit] if limit is not None else rows
        return [tuple(int(x) for x in t[k]) for k in rows]

    def explain(self, user: int, items: Sequence[int] | Tensor,
                max_facts: int | None = 10) -> list[dict[str, Any]]:
        """Per item: the induced preference as a relation (id, name, weight), the attention
        over all relations, the aligned entity and its training facts under that relation."""
        out = super().explain(user, items)
        for row in out:
            rel, ent = row["preference"], int(self.item_entity[row["item"]])
            row["relation"] = rel
            row["relation_name"] = self.relation_names[rel] if self.relation_names else None
            row["entity"] = ent if ent >= 0 else None
            row["facts"] = self.facts(ent, rel, max_facts)
        return out
