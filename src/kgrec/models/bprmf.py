"""BPRMF (Rendle et al., UAI 2009): matrix factorisation trained with the BPR loss.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2, Table 2) and the model whose
embeddings warm-start the joint models (Section 6.3). ``y(u, i) = u^T i``.

Loss (BPR-Opt, with the KTUP authors' mean over the batch)::

    L = mean_b[ -log sigmoid(y(u, i+) - y(u, i-)) ]
        + l2 * mean_b[ ||u||^2 + ||i+||^2 + ||i-||^2 ]

The L2 term covers the embeddings of the batch (Rendle's per-sample regularisation); the
KTUP authors used optimiser weight decay instead (``l2_lambda``), which also reaches rows
outside the batch. Embeddings are Xavier-initialised and row-normalised as in their code.
Parameter names ``user_emb`` / ``item_emb`` are shared by the models that warm-start from a
BPRMF checkpoint (``user_emb.weight``, ``item_emb.weight``).
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.transe import init_embedding


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Mean of ``-log sigmoid(pos - neg)`` (BPR-Opt without its prior)."""
    return -F.logsigmoid(pos - neg).mean()


def sq_norms(*xs: Tensor) -> Tensor:
    """Mean over the batch of the summed squared L2 norms of the rows of ``xs``."""
    return sum(x.pow(2).sum(-1) for x in xs).mean()


@register_model("bprmf", paper="Rendle et al., UAI 2009 (BPR)")
class BPRMF(Model):
    """Matrix factorisation with the BPR pairwise loss; ``score = u^T i``."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr"}

    def __init__(self, n_users: int, n_items: int, dim: int = 100, l2: float = 1e-5,
                 n_entities: int = 0, n_relations: int = 0) -> None:
        super().__init__()
        l2 = float(l2)  # YAML reads 1e-5 (without a dot) as a string
        if dim <= 0 or l2 < 0:
            raise ConfigError("dim must be positive and l2 non-negative")
        self.n_users, self.n_items, self.dim, self.l2 = n_users, n_items, dim, float(l2)
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"bprmf has no task {task!r}")
        u = self.user_emb(batch["users"])
        ip, in_ = self.item_emb(batch["pos_items"]), self.item_emb(batch["neg_items"])
        loss = bpr_loss((u * ip).sum(-1), (u * in_).sum(-1))
        if self.l2 > 0:
            loss = loss + self.l2 * sq_norms(u, ip, in_)
        return loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_emb(users) * self.item_emb(items)).sum(-1)

    def score_all(self, users: Tensor) -> Tensor:
        return self.user_emb(users) @ self.item_emb.weight.T
