"""CoFM (Piao & Breslin, ESWC 2018): an FM for recommendation co-trained with TransE.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2: "jointly trains FM and TransE by
sharing parameters or regularization of aligned items and entities"), in two variants:

* ``variant="share"`` (CoFM (share)): a linked item's latent factor *is* its aligned
  entity's TransE embedding; unlinked items keep their own factor (``item_emb``);
* ``variant="reg"`` (CoFM (reg)): items keep their own factors, tied to the aligned entities
  by ``reg_weight * ||v_i - e_a(i)||^2`` (mean over the aligned items, or entities, of each
  batch, added in both tasks as the KTUP authors do; their code uses the L1 distance, the
  CoFM paper the squared L2 one taken here).

Recommendation: the FM over the user and item one-hots, as in the KTUP authors'
re-implementation, ``y(u, i) = w0 + b_u + b_i + <v_u, v_i>`` (a degree-2 FM over two
one-hot fields), trained with the BPR loss plus ``l2 * mean_b(||v_u||^2 + ||v_i+||^2 +
||v_i-||^2)``. KG: TransE with the margin loss, corruption choice and soft constraints of
:mod:`kgrec.models.transe`. The training schedule alternates the two tasks.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.bprmf import bpr_loss, sq_norms
from kgrec.models.cfkg import aligned_vectors, alignment_buffer
from kgrec.models.transe import TransE, init_embedding


@register_model("cofm", paper="Piao & Breslin, ESWC 2018 (CoFM)")
class CoFM(TransE):
    """FM (user, item) + TransE with shared or regularised item/entity factors."""

    tasks: ClassVar[tuple[str, ...]] = ("rec", "kg")
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr", "kg": "triples"}

    def __init__(self, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray | None = None, variant: Literal["share", "reg"] = "share",
                 dim: int = 100, l2: float = 0.0, reg_weight: float = 1.0, margin: float = 1.0,
                 norm: int = 1, corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None) -> None:
        super().__init__(n_entities=n_entities, n_relations=n_relations, dim=dim, margin=margin,
                         norm=norm, corrupt=corrupt, soft_constraint=soft_constraint,
                         head_prob=head_prob, n_users=n_users, n_items=n_items)
        if variant not in ("share", "reg"):
            raise ConfigError(f"variant must be 'share' or 'reg', got {variant!r}")
        l2, reg_weight = float(l2), float(reg_weight)  # YAML may give '1e-5' strings
        if l2 < 0 or reg_weight < 0:
            raise ConfigError("l2 and reg_weight must be non-negative")
        self.variant, self.l2, self.reg_weight = variant, float(l2), float(reg_weight)
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.bias = nn.Parameter(torch.zeros(()))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        a = alignment_buffer(item_entity, n_items, n_entities)
        ent_item = torch.full((max(n_entities, 1),), -1, dtype=torch.long)
        linked = torch.nonzero(a >= 0).squeeze(1)
        ent_item[a[linked]] = linked
        self.register_buffer("item_entity", a, persistent=False)
        self.register_buffer("entity_item", ent_item, persistent=False)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        kwargs.setdefault("item_entity", dataset.item_entity)
        return super().build(dataset, train, **kwargs)

    def item_vectors(self, items: Tensor) -> Tensor:
        if self.variant == "share":
            return aligned_vectors(items, self.item_entity, self.entity_emb, self.item_emb)
        return self.item_emb(items)

    def alignment_penalty(self, items: Tensor, entities: Tensor) -> Tensor:
        """Mean of ``||v_i - e||^2`` over the pairs with ``entities >= 0``."""
        ok = (entities >= 0).float()
        d = (self.item_emb(items.clamp_min(0)) - self.entity_emb(entities.clamp_min(0)))
        return (d.pow(2).sum(-1) * ok).sum() / ok.sum().clamp_min(1.0)

    def _fm(self, users: Tensor, vu: Tensor, items: Tensor, vi: Tensor) -> Tensor:
        return (self.bias + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
                + (vu * vi).sum(-1))

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task == "rec":
            users, pos, neg = batch["users"], batch["pos_items"], batch["neg_items"]
            vu, vp, vn = self.user_emb(users), self.item_vectors(pos), self.item_vectors(neg)
            loss = bpr_loss(self._fm(users, vu, pos, vp), self._fm(users, vu, neg, vn))
            if self.l2 > 0:
                loss = loss + self.l2 * sq_norms(vu, vp, vn)
            if self.variant == "reg" and self.reg_weight > 0:
                items = torch.cat([pos, neg])
                loss = loss + self.reg_weight * self.alignment_penalty(
                    items, self.item_entity[items])
            return loss
        if task == "kg":
            loss = self.kg_loss(batch)
            if self.variant == "reg" and self.reg_weight > 0:
                ents = torch.cat([batch[k] for k in ("heads", "tails", "corrupt_heads",
                                                     "corrupt_tails")])
                items = self.entity_item[ents]
                loss = loss + self.reg_weight * self.alignment_penalty(
                    items, torch.where(items >= 0, ents, -1))
            return loss
        raise ValueError(f"cofm has no task {task!r}")

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self._fm(users, self.user_emb(users), items, self.item_vectors(items))

    def score_all(self, users: Tensor) -> Tensor:
        items = torch.arange(self.n_items, device=users.device)
        return (self.bias + self.user_bias(users) + self.item_bias.weight.T
                + self.user_emb(users) @ self.item_vectors(items).T)
