"""TransH (Wang et al. 2014), KTUP Section 3.2, Eq. 1-4.

``f(h, r, t) = ||h_perp + d_r - t_perp||_1`` with ``e_perp = e - (w_r^T e) w_r`` (Eq. 1-3),
trained with the margin ranking loss of Eq. 4 (see :mod:`kgrec.models.transe` for the
corruption choice). The hyperplane normal ``w_r`` is L2-normalised inside the projection, so
TransH's ``||w_r|| = 1`` holds exactly; the other TransH constraints are soft penalties with
weight ``soft_constraint``: ``[||e||^2 - 1]_+`` on the batch's entities, ``[||d_r||^2 - 1]_+``
and the orthogonality ``(w_r^T d_r)^2 / ||d_r||^2`` (epsilon = 0, as the authors' code) on
its relations.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from kgrec.models.base import register_model
from kgrec.models.transe import TranslationalKGModel, init_embedding


def transh_project(e: Tensor, w: Tensor, normalize: bool = True) -> Tensor:
    """Projection onto the hyperplane of normal ``w``: ``e - (w^T e) w`` (Eq. 2-3).

    ``w`` is L2-normalised along the last dimension first (``normalize=False``: used as
    given, the authors' ``projection_transH_pytorch``); shapes broadcast.
    """
    if normalize:
        w = F.normalize(w, p=2, dim=-1)
    return e - (e * w).sum(-1, keepdim=True) * w


def orthogonality_penalty(d: Tensor, w: Tensor) -> Tensor:
    """Mean of ``(w^T d)^2 / ||d||^2`` with unit ``w`` (TransH's soft orthogonality)."""
    w = F.normalize(w, p=2, dim=-1)
    return ((w * d).sum(-1).pow(2) / d.pow(2).sum(-1).clamp_min(1e-12)).mean()


@register_model("transh", paper="Wang et al., AAAI 2014 (TransH)")
class TransH(TranslationalKGModel):
    """TransH: per relation a hyperplane normal ``norm_emb`` and a translation ``relation_emb``."""

    def __init__(self, n_entities: int, n_relations: int, dim: int = 100, margin: float = 1.0,
                 norm: int = 1, corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None,
                 n_users: int = 0, n_items: int = 0) -> None:
        super().__init__(n_entities, n_relations, dim, margin, norm, corrupt, soft_constraint,
                         head_prob, n_users, n_items)
        self.relation_emb = init_embedding(n_relations, dim)
        self.norm_emb = init_embedding(n_relations, dim)

    def project(self, e: Tensor, r: Tensor) -> Tensor:
        return transh_project(e, self.norm_emb(r))

    def translation(self, r: Tensor) -> Tensor:
        return self.relation_emb(r)

    def constraint(self, r: Tensor) -> Tensor:
        return orthogonality_penalty(self.relation_emb(r), self.norm_emb(r))
