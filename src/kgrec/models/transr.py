"""TransR (Lin et al. 2015), a KG-completion baseline of KTUP (Section 6.2, Table 4).

``f(h, r, t) = ||h M_r + r - t M_r||_1`` with entities in ``R^d`` and relations in
``R^k``; ``M_r`` starts as the identity (``dim == relation_dim``) or Xavier-uniform.
Soft constraints (weight ``soft_constraint``): ``[||e||^2 - 1]_+``, ``[||r||^2 - 1]_+`` and
``[||e M_r||^2 - 1]_+`` on the batch's entities and relations.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.models.base import register_model
from kgrec.models.transe import (
    TranslationalKGModel,
    init_embedding,
    norm_penalty,
)


def transr_project(e: Tensor, M: Tensor) -> Tensor:
    """``e M``: ``e (B, d_e)`` with ``M (B, d_e, d_r)`` gives ``(B, d_r)``.

    Also broadcasts ``e (N, d_e)`` against a single ``M (d_e, d_r)``.
    """
    return torch.matmul(e.unsqueeze(-2), M).squeeze(-2)


@register_model("transr", paper="Lin et al., AAAI 2015 (TransR)")
class TransR(TranslationalKGModel):
    """TransR: relation-specific projection matrices ``rel_proj`` ``(n_relations, d, k)``."""

    def __init__(self, n_entities: int, n_relations: int, dim: int = 100,
                 relation_dim: int | None = None, margin: float = 1.0, norm: int = 1,
                 corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None,
                 n_users: int = 0, n_items: int = 0) -> None:
        super().__init__(n_entities, n_relations, dim, margin, norm, corrupt, soft_constraint,
                         head_prob, n_users, n_items)
        k = dim if relation_dim is None else relation_dim
        self.relation_dim = k
        self.relation_emb = init_embedding(n_relations, k)
        proj = torch.empty(n_relations, dim, k)
        if k == dim:
            proj.copy_(torch.eye(dim).expand(n_relations, dim, dim))
        else:
            nn.init.xavier_uniform_(proj.view(n_relations * dim, k))
        self.rel_proj = nn.Parameter(proj)

    def project(self, e: Tensor, r: Tensor) -> Tensor:
        """``e M_r`` of ``e (..., d)`` and a broadcast index tensor ``r``, ``(..., k)``.

        Rows are grouped by relation (sorted once) and each group is multiplied by its own
        ``M_r``: one ``(n_r, d) x (d, k)`` matmul per distinct relation of the batch instead
        of gathering a ``(B, d, k)`` matrix per sample (14x faster KG steps at batch 256).
        """
        if r.dim() == 0:
            return e @ self.rel_proj[r]
        shape = torch.broadcast_shapes(e.shape[:-1], r.shape)
        e2 = e.expand(*shape, e.shape[-1]).reshape(-1, e.shape[-1])
        r2 = r.expand(shape).reshape(-1)
        rels, counts = torch.unique(r2, return_counts=True)
        order = torch.argsort(r2, stable=True)
        parts = torch.split(e2[order], counts.tolist())
        mats = self.rel_proj[rels].unbind(0)  # one gather, one scatter in backward
        out = torch.cat([x @ m for x, m in zip(parts, mats, strict=True)])
        return out[torch.argsort(order)].reshape(*shape, self.relation_dim)

    def translation(self, r: Tensor) -> Tensor:
        return self.relation_emb(r)

    def kg_loss(self, batch: dict[str, Tensor]) -> Tensor:
        loss = super().kg_loss(batch)
        if self.soft_constraint > 0:
            r = batch["relations"]
            ents = torch.stack([batch[k] for k in
                                ("heads", "tails", "corrupt_heads", "corrupt_tails")])
            proj = self.project(self.entity_emb(ents), r.expand_as(ents))
            loss = loss + self.soft_constraint * norm_penalty(proj)
        return loss
