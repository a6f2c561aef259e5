"""NFM (He and Chua, SIGIR 2017): neural factorization machines.

A baseline of HKRM (Table 2) and JNSKR (Table 2). The NFM paper is not in
``shared/papers``; equations cited from the SIGIR 2017 paper. Fields of a pair ``(u, i)``:
the one-hot user, the one-hot item and (``use_kg``) the bag ``N(i)`` of KG entities linked
to the item's entity (the tails of its triples, values ``x_e = 1 / |N(i)|``, as the FM
baseline, :func:`kgrec.models.fm.item_entity_bags`); KGAT and JNSKR feed NFM the same KG
features. The model (Eq. 1, 4-7)::

    f_BI = 1/2 [ (sum_j x_j v_j)^2 - sum_j (x_j v_j)^2 ]          (Bi-Interaction, Eq. 4)
    z_l = ReLU(W_l z_{l-1} + b_l),  z_0 = f_BI                     (Eq. 5)
    y(x) = w_0 + sum_j w_j x_j + h^T z_L                           (Eq. 6-7)

With ``s_i = v_i + sum_e x_e v_e`` and ``c_i = 1/2 (s_i^2 - v_i^2 - sum_e x_e^2 v_e^2)``
(item side, element-wise) ``f_BI = v_u * s_i + c_i``, so full ranking computes the item
side once. Readings: ``layers`` are the hidden widths (paper's best: one layer, NFM-1,
``[64]``); dropout ``dropout_bi`` on ``f_BI`` and ``dropout`` after each hidden layer
(Section 3.2.1); batch normalisation (Section 3.2.2) is not used. The log loss on
labelled pairs (the paper's Eq. 8 is the squared loss of its regression tasks; for
implicit feedback its Section 3.2 names the log loss) with the ``ctr`` or ``pointwise``
sampler, plus ``l2`` times the mean squared norm of the pair's features' factors.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.fm import gather_bags, item_entity_bags
from kgrec.models.jnskr import training_triples
from kgrec.models.ncf import PointwiseModel, mlp


class EntityBags(nn.Module):
    """The CSR bags of KG entities of each item with values ``x_e = 1 / |N(i)|``."""

    def __init__(self, n_items: int, indptr: np.ndarray | None, members: np.ndarray | None):
        super().__init__()
        if indptr is None:
            indptr, members = np.zeros(n_items + 1, np.int64), np.zeros(0, np.int64)
        indptr_t = torch.as_tensor(np.asarray(indptr), dtype=torch.long)
        members_t = torch.as_tensor(np.asarray(members), dtype=torch.long)
        if len(indptr_t) != n_items + 1 or int(indptr_t[-1]) != len(members_t):
            raise ConfigError("bag_indptr / bag_entities do not describe n_items bags")
        sizes = (indptr_t[1:] - indptr_t[:-1]).to(torch.get_default_dtype())
        self.register_buffer("indptr", indptr_t, persistent=False)
        self.register_buffer("members", members_t, persistent=False)
        self.register_buffer("value", 1.0 / sizes.clamp_min(1.0), persistent=False)

    def forward(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(segment, entity, x)`` per bag element of ``items``; ``segment`` indexes
        ``items``."""
        seg, ents = gather_bags(self.indptr, self.members, items)
        return seg, ents, self.value[items][seg]


def kg_bags(dataset: KGDataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the dataset's item entity bags (tails of the training triples)."""
    if kwargs.get("use_kg", True):
        indptr, ents = item_entity_bags(dataset.item_entity, training_triples(dataset), "tails")
        kwargs = {"bag_indptr": indptr, "bag_entities": ents, **kwargs}
    return kwargs


@register_model("nfm", paper="He & Chua, SIGIR 2017 (NFM)")
class NFM(PointwiseModel):
    """NFM over ``[user, item, the item's KG entity bag]`` with the log loss."""

    def __init__(self, n_users: int, n_items: int, n_entities: int, dim: int = 64,
                 layers: list[int] | tuple[int, ...] = (64,), dropout_bi: float = 0.5,
                 dropout: float = 0.2, l2: float = 0.0, use_kg: bool = True,
                 bag_indptr: np.ndarray | None = None, bag_entities: np.ndarray | None = None,
                 init_std: float = 0.01, sampler: Literal["ctr", "pointwise"] = "ctr",
                 n_relations: int = 0) -> None:
        super().__init__()
        layers = [int(x) for x in layers]
        if dim <= 0 or min(layers, default=1) <= 0:
            raise ConfigError("dim and layers must be positive")
        if float(l2) < 0 or not (0 <= dropout_bi < 1 and 0 <= dropout < 1):
            raise ConfigError("l2 must be non-negative and dropouts in [0, 1)")
        self._set_sampler(sampler)
        self.n_users, self.n_items, self.n_entities = n_users, n_items, n_entities
        self.l2, self.use_kg = float(l2), bool(use_kg)
        self.bags = EntityBags(n_items, bag_indptr if use_kg else None,
                               bag_entities if use_kg else None)
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.entity_emb = nn.Embedding(max(n_entities, 1), dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.entity_bias = nn.Embedding(max(n_entities, 1), 1)
        for e in (self.user_emb, self.item_emb, self.entity_emb):
            nn.init.normal_(e.weight, std=init_std)
        for e in (self.user_bias, self.item_bias, self.entity_bias):
            nn.init.zeros_(e.weight)
        self.bias = nn.Parameter(torch.zeros(()))
        self.drop_bi = nn.Dropout(dropout_bi)
        self.hidden = mlp([dim, *layers], dropout)
        self.h = nn.Linear(layers[-1] if layers else dim, 1, bias=False)
        nn.init.xavier_uniform_(self.h.weight)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        return super().build(dataset, train, **kg_bags(dataset, kwargs))

    def item_side(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(s_i, c_i, linear_i, sq_i)``: summed factors, the item-only part of
        ``f_BI``, linear terms and the squared norms of the item fields' factors."""
        v = self.item_emb(items)
        s, sq_el, lin = v, v.square(), self.item_bias(items).squeeze(-1)
        if self.use_kg and len(self.bags.members):
            seg, ents, x = self.bags(items)
            ve = self.entity_emb(ents)
            s = s.index_add(0, seg, ve * x.unsqueeze(-1))
            sq_el = sq_el.index_add(0, seg, ve.square() * x.square().unsqueeze(-1))
            lin = lin.index_add(0, seg, self.entity_bias(ents).squeeze(-1) * x)
        return s, 0.5 * (s.square() - sq_el), lin, sq_el.sum(-1)

    def _logit(self, vu: Tensor, bu: Tensor, s: Tensor, c: Tensor, lin: Tensor) -> Tensor:
        f_bi = vu * s + c  # Eq. 4 (user part + item part)
        z = self.hidden(self.drop_bi(f_bi))  # Eq. 5
        return self.bias + bu + lin + self.h(z).squeeze(-1)  # Eq. 7

    def logits(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        vu = self.user_emb(users)
        s, c, lin, sq = self.item_side(items)
        return self._logit(vu, self.user_bias(users).squeeze(-1), s, c, lin), \
            vu.square().sum(-1) + sq

    def score_all(self, users: Tensor) -> Tensor:
        s, c, lin, _ = self.item_side(torch.arange(self.n_items, device=users.device))
        step = max(1, (1 << 20) // max(self.n_items, 1))
        out = []
        for k in range(0, len(users), step):
            u = users[k:k + step]
            vu = self.user_emb(u).unsqueeze(1)
            bu = self.user_bias(u)
            out.append(self._logit(vu, bu, s.unsqueeze(0), c.unsqueeze(0), lin.unsqueeze(0)))
        return torch.cat(out) if out else s.new_zeros((0, self.n_items))
