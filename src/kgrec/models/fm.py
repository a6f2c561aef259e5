"""Factorization machine (Rendle, ICDM 2010) over users, items and the items' KG entities.

A baseline of KTUP (``shared/papers/002_*``, Section 6.2, Table 2). The feature vector of
a pair ``(u, i)`` is the one-hot user, the one-hot item and the bag ``N(i)`` of entities the
KG links to the item: the tails of the training triples whose head is the item's aligned
entity (``neighbours="both"`` adds the heads of triples whose tail it is). Bag values are
``x_e = 1 / |N(i)|`` (a set-valued variable normalised to sum 1, as in Rendle's libFM
convention); ``use_kg=False`` drops the bag, which is the KTUP authors' FM (user and item
only). The model (FM Eq. 1)::

    y(x) = w0 + sum_j w_j x_j + sum_{j<k} <v_j, v_k> x_j x_k

The pairwise term decomposes (FM Lemma 3.1): with ``s_i = v_i + sum_e x_e v_e`` and
``q_i = ||v_i||^2 + sum_e x_e^2 ||v_e||^2`` (the item side),
``sum_{j<k} ... = <v_u, s_i> + (||s_i||^2 - q_i) / 2``, so ranking all items is one matrix
product plus a per-item constant. Trained with the BPR loss; the L2 term is
``l2 * mean_b(||v_u||^2 + q_{i+} + q_{i-})`` (the factors of the batch's features, weighted by
``x^2``). Bags are stored as CSR arrays and summed with ``index_add`` (no padding, so an item
with hundreds of tails costs what it holds).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.bprmf import bpr_loss
from kgrec.models.transe import init_embedding


def item_entity_bags(item_entity: np.ndarray, triples: np.ndarray,
                     neighbours: str = "tails") -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(indptr, entities)`` of the KG neighbours of each item's aligned entity.

    Duplicates are removed and each bag is sorted; items without an entity get an empty bag.
    """
    n_items = len(item_entity)
    linked = np.flatnonzero(item_entity >= 0)
    order = np.argsort(item_entity[linked], kind="stable")
    ents_sorted, items_sorted = item_entity[linked][order], linked[order]
    pairs = []
    if len(triples) and len(linked):
        h, t = triples[:, 0], triples[:, 2]
        for src, dst in [(h, t)] + ([(t, h)] if neighbours == "both" else []):
            # every item aligned with the source entity gets the other end (usually one item)
            lo = np.searchsorted(ents_sorted, src, side="left")
            cnt = np.searchsorted(ents_sorted, src, side="right") - lo
            within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            pairs.append(np.stack([items_sorted[np.repeat(lo, cnt) + within],
                                   np.repeat(dst, cnt)], 1))
    pairs_arr = np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), np.int64)
    counts = np.bincount(pairs_arr[:, 0], minlength=n_items) if len(pairs_arr) else \
        np.zeros(n_items, np.int64)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, pairs_arr[:, 1].astype(np.int64)


def gather_bags(indptr: Tensor, members: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Flatten the CSR bags of ``rows``: ``(segment id in rows, member)`` per element."""
    start, stop = indptr[rows], indptr[rows + 1]
    counts = stop - start
    seg = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = start[seg] + torch.arange(len(seg), device=rows.device) - first[seg]
    return seg, members[pos]


@register_model("fm", paper="Rendle, ICDM 2010 (FM)")
class FM(Model):
    """FM over ``[user one-hot, item one-hot, normalised bag of the item's KG entities]``."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr"}

    def __init__(self, n_users: int, n_items: int, n_entities: int, dim: int = 100,
                 l2: float = 1e-5, use_kg: bool = True,
                 neighbours: Literal["tails", "both"] = "tails",
                 bag_indptr: np.ndarray | None = None, bag_entities: np.ndarray | None = None,
                 n_relations: int = 0) -> None:
        super().__init__()
        l2 = float(l2)  # YAML reads 1e-5 (without a dot) as a string
        if dim <= 0 or l2 < 0:
            raise ConfigError("dim must be positive and l2 non-negative")
        if neighbours not in ("tails", "both"):
            raise ConfigError(f"neighbours must be 'tails' or 'both', got {neighbours!r}")
        self.n_users, self.n_items, self.n_entities = n_users, n_items, n_entities
        self.dim, self.l2, self.use_kg, self.neighbours = dim, float(l2), use_kg, neighbours
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.bias = nn.Parameter(torch.zeros(()))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        if bag_indptr is None or not use_kg:
            bag_indptr = np.zeros(n_items + 1, dtype=np.int64)
            bag_entities = np.zeros(0, dtype=np.int64)
        indptr = torch.as_tensor(np.asarray(bag_indptr), dtype=torch.long)
        members = torch.as_tensor(np.asarray(bag_entities), dtype=torch.long)
        if len(indptr) != n_items + 1 or int(indptr[-1]) != len(members):
            raise ConfigError("bag_indptr / bag_entities do not describe n_items bags")
        sizes = (indptr[1:] - indptr[:-1]).float()
        self.register_buffer("bag_indptr", indptr, persistent=False)
        self.register_buffer("bag_entities", members, persistent=False)
        self.register_buffer("bag_value", 1.0 / sizes.clamp_min(1.0), persistent=False)
        if use_kg:
            self.entity_emb = init_embedding(max(n_entities, 1), dim)
            self.entity_bias = nn.Embedding(max(n_entities, 1), 1)
            nn.init.zeros_(self.entity_bias.weight)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        if kwargs.get("use_kg", True):
            triples = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
            indptr, ents = item_entity_bags(dataset.item_entity, triples,
                                            kwargs.get("neighbours", "tails"))
            kwargs.setdefault("bag_indptr", indptr)
            kwargs.setdefault("bag_entities", ents)
        return super().build(dataset, train, **kwargs)

    def item_side(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(s_i, q_i, linear_i)`` of the item-side features: summed factors ``(B, d)``,
        summed ``x^2``-weighted squared norms ``(B,)`` and linear terms ``(B,)``."""
        v = self.item_emb(items)
        s, q, lin = v, v.pow(2).sum(-1), self.item_bias(items).squeeze(-1)
        if self.use_kg and len(self.bag_entities):
            seg, ents = gather_bags(self.bag_indptr, self.bag_entities, items)
            x = self.bag_value[items][seg]
            ve = self.entity_emb(ents)
            s = s.index_add(0, seg, ve * x.unsqueeze(-1))
            q = q.index_add(0, seg, ve.pow(2).sum(-1) * x.pow(2))
            lin = lin.index_add(0, seg, self.entity_bias(ents).squeeze(-1) * x)
        return s, q, lin

    def _score(self, vu: Tensor, bu: Tensor, s: Tensor, q: Tensor, lin: Tensor) -> Tensor:
        return self.bias + bu + lin + (vu * s).sum(-1) + 0.5 * (s.pow(2).sum(-1) - q)

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"fm has no task {task!r}")
        users = batch["users"]
        vu, bu = self.user_emb(users), self.user_bias(users).squeeze(-1)
        sp, qp, lp = self.item_side(batch["pos_items"])
        sn, qn, ln = self.item_side(batch["neg_items"])
        loss = bpr_loss(self._score(vu, bu, sp, qp, lp), self._score(vu, bu, sn, qn, ln))
        if self.l2 > 0:
            loss = loss + self.l2 * (vu.pow(2).sum(-1) + qp + qn).mean()
        return loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        s, q, lin = self.item_side(items)
        return self._score(self.user_emb(users), self.user_bias(users).squeeze(-1), s, q, lin)

    def score_all(self, users: Tensor) -> Tensor:
        s, q, lin = self.item_side(torch.arange(self.n_items, device=users.device))
        const = self.bias + lin + 0.5 * (s.pow(2).sum(-1) - q)  # (n_items,)
        return self.user_emb(users) @ s.T + self.user_bias(users) + const
