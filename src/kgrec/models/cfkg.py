"""CFKG (Zhang et al., 2018): TransE on one graph of users, items, entities and relations.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2 and Section 5.4: "CFKG defines the
only buy preference between users and items"). Users and entities share one space and a
``buy`` relation joins each user to the items it interacted with::

    f(h, r, t) = ||h + r - t||_1          (KG triples and (user, buy, item) triples)
    score(u, i) = -f(u, buy, i)

Readings taken (as in the KTUP authors' re-implementation):

* An item is the node of its aligned entity; an item without an entity has its own node
  (a row of ``item_emb``, unused for aligned items). Several items aligned with one entity
  share its node.
* The two kinds of triples are two tasks: ``"kg"`` (KG triples, the ``"triples"`` sampler,
  TransE's margin loss and corruption choice from :mod:`kgrec.models.transe`) and ``"rec"``
  ((user, buy, item) triples from the ``"bpr"`` sampler: the tail is corrupted into an item
  the user has not interacted with; users are not corrupted). The task schedule sets their
  mix (the authors alternate ``10 lambda`` rec steps with ``10 (1 - lambda)`` KG steps).
* ``rec_loss="margin"`` is TransE's hinge ``[f(u,buy,i+) + margin - f(u,buy,i-)]_+``;
  ``"bpr"`` is ``-log sigmoid(f(u,buy,i-) - f(u,buy,i+))``, what the authors' code trains.
* Soft unit-ball constraints (weight ``soft_constraint``) cover users, items and ``buy`` too.

Parameters: ``user_emb``, ``entity_emb``, ``relation_emb`` (KG relations only, so a TransE
checkpoint loads as is), ``buy_emb`` (one row) and ``item_emb`` (unaligned items).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.transe import (
    TransE,
    init_embedding,
    norm_penalty,
    pairwise_distance,
    transe_distance,
)


def alignment_buffer(item_entity: np.ndarray | None, n_items: int, n_entities: int) -> Tensor:
    """Checked ``(n_items,)`` long tensor of aligned entities (``-1``: none)."""
    if item_entity is None:
        return torch.full((n_items,), -1, dtype=torch.long)
    a = torch.as_tensor(np.asarray(item_entity), dtype=torch.long)
    if a.shape != (n_items,) or (a >= n_entities).any() or (a < -1).any():
        raise ConfigError("item_entity must hold one entity id (or -1) per item")
    return a


def aligned_vectors(items: Tensor, item_entity: Tensor, entity_emb: nn.Embedding,
                    item_emb: nn.Embedding) -> Tensor:
    """The aligned entity's vector for linked items, the item's own vector otherwise."""
    a = item_entity[items]
    return torch.where((a >= 0).unsqueeze(-1), entity_emb(a.clamp_min(0)), item_emb(items))


@register_model("cfkg", paper="Zhang et al., Algorithms 2018 (CFKG)")
class CFKG(TransE):
    """TransE over users, items and entities with a ``buy`` relation."""

    tasks: ClassVar[tuple[str, ...]] = ("rec", "kg")
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr", "kg": "triples"}

    def __init__(self, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray | None = None, dim: int = 100, margin: float = 1.0,
                 norm: int = 1, corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, rec_loss: Literal["margin", "bpr"] = "margin",
                 head_prob: np.ndarray | None = None) -> None:
        super().__init__(n_entities=n_entities, n_relations=n_relations, dim=dim, margin=margin,
                         norm=norm, corrupt=corrupt, soft_constraint=soft_constraint,
                         head_prob=head_prob, n_users=n_users, n_items=n_items)
        if rec_loss not in ("margin", "bpr"):
            raise ConfigError(f"rec_loss must be 'margin' or 'bpr', got {rec_loss!r}")
        self.rec_loss = rec_loss
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.buy_emb = init_embedding(1, dim)
        self.register_buffer("item_entity", alignment_buffer(item_entity, n_items, n_entities),
                             persistent=False)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        kwargs.setdefault("item_entity", dataset.item_entity)
        return super().build(dataset, train, **kwargs)

    def item_vectors(self, items: Tensor) -> Tensor:
        return aligned_vectors(items, self.item_entity, self.entity_emb, self.item_emb)

    def rec_distance(self, users: Tensor, items: Tensor) -> Tensor:
        """``f(u, buy, i)`` of index tensors, shape ``(B,)``."""
        return transe_distance(self.user_emb(users), self.buy_emb.weight[0],
                               self.item_vectors(items), self.norm)

    def rec_loss_fn(self, batch: dict[str, Tensor]) -> Tensor:
        u = self.user_emb(batch["users"])
        ip, in_ = self.item_vectors(batch["pos_items"]), self.item_vectors(batch["neg_items"])
        buy = self.buy_emb.weight[0]
        dp = transe_distance(u, buy, ip, self.norm)
        dn = transe_distance(u, buy, in_, self.norm)
        if self.rec_loss == "margin":
            loss = F.relu(dp + self.margin - dn).mean()
        else:
            loss = -F.logsigmoid(dn - dp).mean()
        if self.soft_constraint > 0:
            reg = (norm_penalty(u) + norm_penalty(torch.cat([ip, in_]))
                   + norm_penalty(self.buy_emb.weight))
            loss = loss + self.soft_constraint * reg
        return loss

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task == "rec":
            return self.rec_loss_fn(batch)
        if task == "kg":
            return self.kg_loss(batch)
        raise ValueError(f"cfkg has no task {task!r}")

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return -self.rec_distance(users, items)

    def score_all(self, users: Tensor) -> Tensor:
        q = self.user_emb(users) + self.buy_emb.weight
        keys = self.item_vectors(torch.arange(self.n_items, device=users.device))
        return -pairwise_distance(q, keys, self.norm)
