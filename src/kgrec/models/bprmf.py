"""BPRMF (Rendle et al., UAI 2009): matrix factorisation trained with the BPR loss.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2, Table 2) and the model whose
embeddings warm-start the joint models (Section 6.3). ``y(u, i) = u^T i``.

Loss (BPR-Opt, with the KTUP authors' mean over the batch)::

    L = mean_b[ -log sigmoid(y(u, i+) - y(u, i-)) ]
        + l2 * mean_b[ ||u||^2 + ||i+||^2 + ||i-||^2 ]

The L2 term covers the embeddings of the batch (Rendle's per-sample regularisation); the
KTUP authors used optimiser weight decay instead (``l2_lambda``), which also reaches rows
outside the batch.

Initialisation (``init``; BPR papers leave it open): ``"xavier_normal"`` (default;
N(0, 2 / (rows + dim)) per table, not normalised, as RecBole's BPR), ``"normal:STD"``, or
``"unit"`` (Xavier rows scaled to unit norm, the KTUP authors' code). Unit rows make each
coordinate ~``1/sqrt(dim)`` (0.1 at dim 100), so initial scores carry noise of std ~0.1
while Adam at lr 1e-3 moves a row by ~1e-3 per update and a Last.FM user row gets ~16
updates per epoch: the noise dominated for several epochs (valid Recall@10 0.002-0.006 for
8 epochs at lr 1e-3). With Xavier-normal rows (std ~0.03 users, ~0.02 items) the noise is
~10x smaller: valid Recall@10 0.125 after 4 epochs and 0.206 after 10, against 0.004 and
0.042 with unit rows (docs/results.md, issue 10).
Parameter names ``user_emb`` / ``item_emb`` are shared by the models that warm-start from a
BPRMF checkpoint (``user_emb.weight``, ``item_emb.weight``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.transe import init_embedding


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Mean of ``-log sigmoid(pos - neg)`` (BPR-Opt without its prior)."""
    return -F.logsigmoid(pos - neg).mean()


def sq_norms(*xs: Tensor) -> Tensor:
    """Mean over the batch of the summed squared L2 norms of the rows of ``xs``."""
    return sum(x.pow(2).sum(-1) for x in xs).mean()


def mf_embedding(n: int, dim: int, init: str) -> nn.Embedding:
    """An embedding table initialised as ``init`` says (see the module docstring)."""
    if init == "unit":
        return init_embedding(n, dim)
    emb = nn.Embedding(n, dim)
    if init == "xavier_normal":
        nn.init.xavier_normal_(emb.weight)
    elif init.startswith("normal:"):
        try:
            std = float(init.removeprefix("normal:"))
        except ValueError:
            std = -1.0
        if std <= 0:
            raise ConfigError(f"init normal:STD needs a positive STD, got {init!r}")
        nn.init.normal_(emb.weight, std=std)
    else:
        raise ConfigError(f"init must be 'xavier_normal', 'normal:STD' or 'unit', got {init!r}")
    return emb


@register_model("bprmf", paper="Rendle et al., UAI 2009 (BPR)")
class BPRMF(Model):
    """Matrix factorisation with the BPR pairwise loss; ``score = u^T i``."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr"}

    def __init__(self, n_users: int, n_items: int, dim: int = 100, l2: float = 1e-5,
                 n_entities: int = 0, n_relations: int = 0, init: str = "xavier_normal") -> None:
        super().__init__()
        l2 = float(l2)  # YAML reads 1e-5 (without a dot) as a string
        if dim <= 0 or l2 < 0:
            raise ConfigError("dim must be positive and l2 non-negative")
        self.n_users, self.n_items, self.dim, self.l2 = n_users, n_items, dim, float(l2)
        self.init = init
        self.user_emb = mf_embedding(n_users, dim, init)
        self.item_emb = mf_embedding(n_items, dim, init)

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"bprmf has no task {task!r}")
        u = self.user_emb(batch["users"])
        # one lookup for both item sides: each lookup costs a dense zero gradient of the table
        ip, in_ = self.item_emb(torch.cat([batch["pos_items"], batch["neg_items"]])).split(
            len(batch["users"]))
        loss = bpr_loss((u * ip).sum(-1), (u * in_).sum(-1))
        if self.l2 > 0:
            loss = loss + self.l2 * sq_norms(u, ip, in_)
        return loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_emb(users) * self.item_emb(items)).sum(-1)

    def score_all(self, users: Tensor) -> Tensor:
        return self.user_emb(users) @ self.item_emb.weight.T
