"""Wide&Deep (Cheng et al., DLRS 2016) with the MKR paper's inputs.

A baseline of MKR (``shared/papers/000_*``, Section 4.2 and Table 2): "The input for
Wide&Deep is the same as in LibFM" (raw user and item features and the item's averaged
entity embeddings); "the dimension of user, item, and entity is 64, and we use a two-layer
deep channel with dimension of 100 and 50 as well as a wide channel". The Wide&Deep paper
is not in ``shared/papers``; its equations are cited from the DLRS 2016 paper::

    wide:  y_wide = w^T [x, phi(x)] + b                                  (Eq. 1)
    deep:  a^(l+1) = ReLU(W^(l) a^(l) + b^(l)),  a^(0) = [e_u; e_i; m_i]  (Eq. 2)
    P(Y = 1 | x) = sigmoid(w_wide^T [x, phi(x)] + w_deep^T a^(l_f) + b)  (Eq. 3)

Readings: ``x`` is the one-hot user, the one-hot item and the item's KG entity bag
``N(i)`` (tails of its triples, values ``1 / |N(i)|``); ``m_i = sum_e x_e v_e`` is the
averaged embedding of those entities (zero for an item without one). MKR feeds entity
embeddings pre-trained with TransR; here they are learned jointly with the model (one
end-to-end model, no pre-training stage). The wide part has no cross-product
transformation ``phi``: MKR's input has no hand-crafted crosses, and a user x item cross
would only memorise the training pairs. Wide and deep parts are trained jointly with one
optimiser (the paper used FTRL for the wide and AdaGrad for the deep part); log loss on
labelled pairs (``ctr`` or ``pointwise`` sampler) plus ``l2`` times the mean squared norm
of the pair's embeddings.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.ncf import PointwiseModel, mlp
from kgrec.models.nfm import EntityBags, kg_bags


@register_model("widedeep", paper="Cheng et al., DLRS 2016 (Wide&Deep)")
class WideDeep(PointwiseModel):
    """Joint wide (linear) and deep (MLP over ``[e_u; e_i; m_i]``) logits (Eq. 3)."""

    def __init__(self, n_users: int, n_items: int, n_entities: int, dim: int = 64,
                 layers: list[int] | tuple[int, ...] = (100, 50), dropout: float = 0.0,
                 l2: float = 0.0, use_kg: bool = True, bag_indptr: np.ndarray | None = None,
                 bag_entities: np.ndarray | None = None, init_std: float = 0.01,
                 sampler: Literal["ctr", "pointwise"] = "ctr", n_relations: int = 0) -> None:
        super().__init__()
        layers = [int(x) for x in layers]
        if dim <= 0 or not layers or min(layers) <= 0:
            raise ConfigError("dim and layers must be positive")
        if float(l2) < 0 or not 0 <= dropout < 1:
            raise ConfigError("l2 must be non-negative and dropout in [0, 1)")
        self._set_sampler(sampler)
        self.n_users, self.n_items, self.n_entities = n_users, n_items, n_entities
        self.l2, self.use_kg = float(l2), bool(use_kg)
        self.bags = EntityBags(n_items, bag_indptr if use_kg else None,
                               bag_entities if use_kg else None)
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.entity_emb = nn.Embedding(max(n_entities, 1), dim)
        self.user_w = nn.Embedding(n_users, 1)  # wide weights of the one-hot fields
        self.item_w = nn.Embedding(n_items, 1)
        self.entity_w = nn.Embedding(max(n_entities, 1), 1)
        for e in (self.user_emb, self.item_emb, self.entity_emb):
            nn.init.normal_(e.weight, std=init_std)
        for e in (self.user_w, self.item_w, self.entity_w):
            nn.init.zeros_(e.weight)
        self.bias = nn.Parameter(torch.zeros(()))
        self.deep = mlp([3 * dim, *layers], dropout)
        self.w_deep = nn.Linear(layers[-1], 1, bias=False)
        nn.init.xavier_uniform_(self.w_deep.weight)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        return super().build(dataset, train, **kg_bags(dataset, kwargs))

    def item_side(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``([e_i; m_i], wide_i, sq_i)``: the item's deep input, wide term and the squared
        norm of its embeddings."""
        e_i = self.item_emb(items)
        m = torch.zeros_like(e_i)
        wide = self.item_w(items).squeeze(-1)
        if self.use_kg and len(self.bags.members):
            seg, ents, x = self.bags(items)
            m = m.index_add(0, seg, self.entity_emb(ents) * x.unsqueeze(-1))
            wide = wide.index_add(0, seg, self.entity_w(ents).squeeze(-1) * x)
        return torch.cat([e_i, m], -1), wide, e_i.square().sum(-1) + m.square().sum(-1)

    def logits(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        e_u = self.user_emb(users)
        deep_i, wide_i, sq = self.item_side(items)
        deep = self.w_deep(self.deep(torch.cat([e_u, deep_i], -1))).squeeze(-1)  # Eq. 2
        wide = self.user_w(users).squeeze(-1) + wide_i  # Eq. 1
        return self.bias + wide + deep, e_u.square().sum(-1) + sq  # Eq. 3

    def score_all(self, users: Tensor) -> Tensor:
        """Every item for each user: the deep channel's first layer splits into a user and
        an item part (``W [e_u; d_i] = W_u e_u + W_i d_i``), each computed once."""
        items = torch.arange(self.n_items, device=users.device)
        deep_i, wide_i, _ = self.item_side(items)
        first = self.deep[0]
        d = self.user_emb.embedding_dim
        item_part = deep_i @ first.weight[:, d:].T + first.bias  # (N, h1)
        step = max(1, (1 << 19) // max(self.n_items, 1))
        out = []
        for k in range(0, len(users), step):
            u = users[k:k + step]
            user_part = self.user_emb(u) @ first.weight[:, :d].T  # (b, h1)
            a = self.deep[1:](user_part.unsqueeze(1) + item_part.unsqueeze(0))
            deep = self.w_deep(a).squeeze(-1)
            out.append(self.bias + self.user_w(u) + wide_i.unsqueeze(0) + deep)
        return torch.cat(out) if out else wide_i.new_zeros((0, self.n_items))

