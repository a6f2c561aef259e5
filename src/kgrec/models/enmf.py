"""ENMF (Chen et al., TOIS 2020): efficient neural matrix factorisation without sampling.

The non-sampling CF baseline of JNSKR (``shared/papers/003_*``, Table 2), and the CF loss
JNSKR builds on; the loss is :func:`kgrec.models.nonsampling.cf_whole_data_loss`, shared
with JNSKR's Eq. 9. The ENMF paper is not in ``shared/papers``; cited from the TOIS paper
and the authors' code (github.com/chenchongthu/ENMF).

Prediction (ENMF Eq. 1, the generalised MF of NCF's GMF with a linear output)::

    y(u, v) = h^T (p_u * q_v)

Loss, user-based batches (ENMF-U, Section 3.3 Eq. 13-16), over every pair of each batch
user: ``sum_{u in B} sum_{v in V} c_uv (r_uv - y_uv)^2`` with ``c_uv = c+`` on observed pairs
and ``c-_v`` elsewhere, computed as (up to a parameter-free constant)::

    sum_{u in B, v in V+_u} ((c+ - c-_v) y^2 - 2 c+ y)
      + sum_{i,j} (h_i h_j) (sum_{u in B} p_ui p_uj) (sum_{v in V} c-_v q_vi q_vj)

Readings: ``c-_v`` is ``uniform`` (``c0 / |V|`` per item, ENMF's constant weight) or
``popularity`` (``c0 f_v^p / sum f^p``, ENMF Section 3.4; the weighting JNSKR uses), so
``c0`` is the total negative weight as in JNSKR. Dropout (``dropout``) is applied to the
batch users' ``p_u`` (our reading of the authors' code); ``l2`` is an L2 term on the batch users' and
every item's embedding at every step (the items all enter the Gram term). Users without a
training positive are not visited (the authors train on the users of the training file).
``h`` starts at 0.01 as in the authors' code; embeddings are N(0, 0.01^2) (truncated).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import Sampler, register_sampler, shard_groups
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.jnskr import csr_by, expand_csr, training_pairs
from kgrec.models.nonsampling import cf_whole_data_loss, negative_weights


@register_sampler("user_batches")
class UserBatchSampler(Sampler):
    """Batches of users that have training positives, with all their positive items as
    flat ``(pos_index, pos_items)`` lists (``pos_index``: the user's row in ``users``).
    One epoch visits every such user once."""

    def __init__(self, n_users: int, pairs: np.ndarray, batch_size: int,
                 shuffle: bool = True) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.batch_size, self.shuffle = batch_size, shuffle
        self.data: dict[str, Tensor] = {}
        self.indptr, order = csr_by(pairs[:, 0], n_users)
        self.items = pairs[order, 1]
        self.active = np.flatnonzero(np.diff(self.indptr) > 0)
        self.n = len(self.active)

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int,
                  shuffle: bool = True, **_: Any) -> UserBatchSampler:
        return cls(dataset.n_users, training_pairs(split), batch_size, shuffle)

    def __len__(self) -> int:
        return max(1, math.ceil(self.n / self.batch_size))

    def examples(self, batch: dict[str, Tensor]) -> int:
        """The batch users' observed ``(user, item)`` pairs: an epoch counts every training
        pair once, as JNSKR's sampler and one epoch of a sampled model (BPRMF) do, so that
        ``train.max_examples`` caps them alike (a step also sees every unobserved pair)."""
        return len(batch["pos_items"])

    def shard(self, batch: dict[str, Tensor], rank: int, world: int) -> tuple[dict[str, Tensor], float]:
        """A contiguous slice of the batch's users with their positives (distributed)."""
        return shard_groups(batch, [("users", "pos_index", ["pos_items"])], rank, world)

    def epoch(self, seed: int) -> Iterator[dict[str, Tensor]]:
        rng = np.random.default_rng(seed)
        users = rng.permutation(self.active) if self.shuffle else self.active
        for s in range(0, max(self.n, 1), self.batch_size):
            batch = users[s:s + self.batch_size]
            pos_index, at = expand_csr(self.indptr, batch)
            out = {"users": batch, "pos_index": pos_index, "pos_items": self.items[at]}
            yield {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64))
                   for k, v in out.items()}


@register_model("enmf", paper="Chen et al., TOIS 2020 (ENMF)")
class ENMF(Model):
    """ENMF-U: ``y = h^T (p_u * q_v)`` with the whole-data weighted squared loss."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "user_batches"}
    batch_reduction: ClassVar[str] = "sum"  # the loss sums over the batch's users

    def __init__(self, n_users: int, n_items: int, train_pairs: np.ndarray | None = None,
                 dim: int = 64, weighting: Literal["uniform", "popularity"] = "uniform",
                 c0: float = 50.0, weight_exponent: float = 0.5, c_pos: float = 1.0,
                 dropout: float = 0.3, l2: float = 0.0, init_std: float = 0.01,
                 n_entities: int = 0, n_relations: int = 0) -> None:
        super().__init__()
        c0, c_pos, l2 = float(c0), float(c_pos), float(l2)
        if dim <= 0:
            raise ConfigError("dim must be positive")
        if min(c0, c_pos, l2) < 0:
            raise ConfigError("c0, c_pos and l2 must be non-negative")
        if not 0 <= dropout < 1:
            raise ConfigError("dropout must be in [0, 1)")
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.c_pos, self.dropout, self.l2 = c_pos, float(dropout), l2
        pairs = (np.zeros((0, 2), np.int64) if train_pairs is None
                 else np.asarray(train_pairs, np.int64).reshape(-1, 2))
        freq = np.bincount(pairs[:, 1], minlength=n_items)
        c_neg = negative_weights(freq, c0, weighting, float(weight_exponent))
        self.register_buffer("c_neg", torch.from_numpy(c_neg).to(torch.get_default_dtype()),
                             persistent=False)
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        for emb in (self.user_emb, self.item_emb):
            nn.init.trunc_normal_(emb.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        self.h = nn.Parameter(torch.full((dim,), 0.01))

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> ENMF:
        return cls(n_users=dataset.n_users, n_items=dataset.n_items,
                   train_pairs=training_pairs(train), **kwargs)

    def cf_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The whole-data loss of the batch users (module docstring), without L2."""
        p = F.dropout(self.user_emb(batch["users"]), self.dropout, self.training)
        q = self.item_emb.weight
        pos = batch["pos_items"]
        return cf_whole_data_loss(q, self.h, p, None, batch["pos_index"], q[pos], self.c_pos,
                                  every_neg=self.c_neg, pos_every_neg=self.c_neg[pos])

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"enmf has no task {task!r}")
        scale = batch.get("loss_scale", 1.0)  # distributed steps (Model.batch_reduction)
        loss = scale * self.cf_loss(batch)
        if self.l2 > 0:
            loss = loss + self.l2 * (scale * self.user_emb(batch["users"]).square().sum()
                                     + self.item_emb.weight.square().sum())
        return loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return (self.user_emb(users) * self.item_emb(items)) @ self.h

    def score_all(self, users: Tensor) -> Tensor:
        return (self.user_emb(users) * self.h) @ self.item_emb.weight.T
