"""CKE (Zhang et al., KDD 2016) without its text and image parts: BPRMF + TransR.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2: "combines various item embeddings
from different sources including TransR on KG"; reviews and images are removed as the
paper says). The item vector adds the TransR embedding of the aligned entity to the item's
own offset (CKE Section 4.4, ``e_j = eta_j + v_j``)::

    item(i) = item_emb[i] + entity_emb[a(i)]      (item_emb[i] alone when i has no entity)
    score(u, i) = user_emb[u]^T item(i)

Tasks: ``"rec"`` (BPR loss, ``"bpr"`` sampler, L2 ``l2 * mean_b(||u||^2 + ||item(i+)||^2 +
||item(i-)||^2)``) and ``"kg"`` (TransR with its margin loss, corruption choice and soft
constraints from :mod:`kgrec.models.transr`; ``M_r`` starts as the identity). The tasks
are alternated by the training schedule, as the KTUP authors do (``joint_ratio``).
Parameter names follow BPRMF (``user_emb``, ``item_emb``) and TransR (``entity_emb``,
``relation_emb``, ``rel_proj``) so both checkpoints warm-start it (Section 6.3).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.bprmf import bpr_loss, sq_norms
from kgrec.models.cfkg import alignment_buffer
from kgrec.models.transe import init_embedding
from kgrec.models.transr import TransR


@register_model("cke", paper="Zhang et al., KDD 2016 (CKE; without text and images)")
class CKE(TransR):
    """BPRMF whose item vectors add the aligned entity's TransR embedding."""

    tasks: ClassVar[tuple[str, ...]] = ("rec", "kg")
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr", "kg": "triples"}

    def __init__(self, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray | None = None, dim: int = 100, l2: float = 0.0,
                 margin: float = 1.0, norm: int = 1,
                 corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None) -> None:
        super().__init__(n_entities=n_entities, n_relations=n_relations, dim=dim,
                         relation_dim=None, margin=margin, norm=norm, corrupt=corrupt,
                         soft_constraint=soft_constraint, head_prob=head_prob,
                         n_users=n_users, n_items=n_items)
        l2 = float(l2)  # YAML reads 1e-5 (without a dot) as a string
        if l2 < 0:
            raise ConfigError("l2 must be non-negative")
        self.l2 = float(l2)
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.register_buffer("item_entity", alignment_buffer(item_entity, n_items, n_entities),
                             persistent=False)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        kwargs.setdefault("item_entity", dataset.item_entity)
        return super().build(dataset, train, **kwargs)

    def item_vectors(self, items: Tensor) -> Tensor:
        a = self.item_entity[items]
        ent = self.entity_emb(a.clamp_min(0)) * (a >= 0).unsqueeze(-1)
        return self.item_emb(items) + ent

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task == "kg":
            return self.kg_loss(batch)
        if task != "rec":
            raise ValueError(f"cke has no task {task!r}")
        u = self.user_emb(batch["users"])
        ip, in_ = self.item_vectors(batch["pos_items"]), self.item_vectors(batch["neg_items"])
        loss = bpr_loss((u * ip).sum(-1), (u * in_).sum(-1))
        if self.l2 > 0:
            loss = loss + self.l2 * sq_norms(u, ip, in_)
        return loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_emb(users) * self.item_vectors(items)).sum(-1)

    def score_all(self, users: Tensor) -> Tensor:
        items = torch.arange(self.n_items, device=users.device)
        return self.user_emb(users) @ self.item_vectors(items).T
