"""RippleNet (Wang et al., CIKM 2018): propagating user preferences on the knowledge graph.

A baseline of MKR (``shared/papers/000_*``, Section 4.2 and Table 2), HKRM and JNSKR.
The paper is not in ``shared/papers``; equations are cited from the CIKM 2018 paper and,
where the authors' TensorFlow code (github.com/hwwang55/RippleNet, ``src/model.py``,
``src/data_loader.py``) differs, the code was followed, as said below.

Ripple sets (Section 3.2, Eq. 1-2): ``E_u^0`` are the entities of the items ``u`` clicked
(training positives only) and ``S_u^k = {(h, r, t) in G : h in E_u^{k-1}}``, ``E_u^k`` the
tails of ``S_u^k``. As in the authors' ``get_ripple_set``, each hop keeps a fixed-size
memory of ``n_memory`` triples sampled from ``S_u^k`` (without replacement when it holds at
least ``n_memory`` triples, with replacement otherwise); hop ``k + 1`` expands the
``n_memory`` sampled tails (a multiset) rather than all of ``E_u^k``, and a hop with no
triple reuses the previous hop's memory. The sets are drawn once, vectorised, with
``ripple_seed`` (by default drawn from torch's generator, which the experiment seeds with
the run seed) and saved with the model. A user with no training positive has an empty set
(its ``o`` vectors are 0).

Preference propagation (Section 3.3), for item embedding ``v`` and hop ``k``::

    p_i = softmax_i(v^T R_i h_i)              (Eq. 3, over the hop's memories)
    o_u^k = sum_i p_i t_i                     (Eq. 4)
    u = o_u^1 + ... + o_u^H                   (Eq. 5; ``all_hops=False``: o_u^H only)
    y_hat = sigmoid(u^T v)                    (Eq. 6)

``R`` is a ``d x d`` matrix per relation. Between hops the query ``v`` is updated as the
authors' code does (``item_update``, default ``plus_transform``: ``v <- (v + o^k) W``; the
paper's text replaces ``v`` with ``o^k``, ``replace``), and Eq. 6 uses the last updated
``v`` as the code does.

Loss (Eq. 7-8): the paper has ``lambda_2/2 sum_r ||I_r - E^T R E||^2`` over all entity
pairs and ``lambda_1/2`` times the full squared norms; the authors' code, followed here,
uses on each batch::

    L = mean CE(y, y_hat) - kge_weight * sum_k mean_i sigmoid(h_i^T R_i t_i)
        + l2_weight * sum_k (||h^k||^2 + ||t^k||^2 + ||R^k||^2)

with the KGE and L2 terms over the batch users' memories (``kge_weight`` is the paper's
``lambda_2``, ``l2_weight`` its ``lambda_1``). Embeddings and ``W`` are Xavier-initialised.
Labelled pairs come from the data (``sampler="ctr"``, the CTR protocol) or, on
positive-only top-K data, from the ``pointwise`` sampler (each positive with sampled
unobserved items, :class:`kgrec.models.ncf.PointwiseSampler`).
Items that are KG entities use the entity row (the item *is* the entity); an item without
one gets a row of its own.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.jnskr import csr_by, expand_csr, training_pairs, training_triples

ITEM_UPDATES = ("replace", "plus", "replace_transform", "plus_transform")


def _sample_hop(seed_user: np.ndarray, seed_ent: np.ndarray, indptr: np.ndarray,
                rt: np.ndarray, n_users: int, n_memory: int, rng: np.random.Generator,
                max_candidates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One hop: the triples headed by each user's seed multiset, ``n_memory`` of them
    drawn per user. Returns ``(heads, relations, tails)`` ``(n_users, n_memory)`` and
    ``found (n_users,)`` (users with at least one candidate triple)."""
    order = np.argsort(seed_user, kind="stable")
    seed_user, seed_ent = seed_user[order], seed_ent[order]
    deg = indptr[seed_ent + 1] - indptr[seed_ent]
    n_cand = np.bincount(seed_user, weights=deg, minlength=n_users).astype(np.int64)
    out = np.zeros((3, n_users, n_memory), dtype=np.int64)
    seed_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(seed_user, minlength=n_users), out=seed_ptr[1:])
    # users in chunks of at most max_candidates candidate triples (one user may exceed it)
    cum = np.cumsum(n_cand)
    lo = 0
    while lo < n_users:
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + max_candidates, side="right")), lo + 1)
        hi = min(hi, n_users)
        s0, s1 = seed_ptr[lo], seed_ptr[hi]
        which, pos = expand_csr(indptr, seed_ent[s0:s1])
        cand_user = seed_user[s0:s1][which]  # grouped by user, ascending
        cand_head = seed_ent[s0:s1][which]
        users = np.arange(lo, hi)
        cnt = n_cand[lo:hi]
        start = np.cumsum(cnt) - cnt  # first candidate of each user within the chunk
        picked = np.zeros((hi - lo, n_memory), dtype=np.int64)
        big = cnt >= n_memory
        if big.any():  # without replacement: the n_memory smallest random keys per user
            key = rng.random(len(cand_user))
            srt = np.lexsort((key, cand_user))
            rank = np.arange(len(srt)) - start[cand_user[srt] - lo]
            keep = srt[(rank < n_memory) & big[cand_user[srt] - lo]]
            picked[big] = keep.reshape(-1, n_memory)
        small = (cnt > 0) & ~big
        if small.any():  # with replacement
            draw = np.floor(rng.random((int(small.sum()), n_memory)) * cnt[small, None])
            picked[small] = start[small, None] + draw.astype(np.int64)
        has = cnt > 0
        idx = picked[has]
        out[0, users[has]] = cand_head[idx]
        out[1, users[has]] = rt[pos[idx], 0]
        out[2, users[has]] = rt[pos[idx], 1]
        lo = hi
    return out[0], out[1], out[2], n_cand > 0


def build_ripple_sets(pairs: np.ndarray, item_entity: np.ndarray, triples: np.ndarray,
                      n_users: int, n_entities: int, n_hops: int, n_memory: int, seed: int,
                      max_candidates: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size ripple sets of every user (the authors' ``get_ripple_set``, vectorised).

    Args:
        pairs: ``(n, 2)`` training positives ``(user, item)``: the seeds ``E_u^0``.
        item_entity: ``(n_items,)`` each item's entity (``-1``: none, not a seed).
        triples: ``(m, 3)`` KG triples ``(h, r, t)``.
    Returns:
        ``memories`` ``int64 (n_users, n_hops, 3, n_memory)`` (heads, relations, tails) and
        ``valid`` ``bool (n_users, n_hops)`` (False: the user has no ripple set at all).
    """
    rng = np.random.default_rng(seed)
    indptr, order = csr_by(triples[:, 0], n_entities)
    rt = triples[order, 1:]
    ent = item_entity[pairs[:, 1]] if len(pairs) else np.zeros(0, np.int64)
    linked = ent >= 0
    seed_user, seed_ent = pairs[linked, 0].astype(np.int64), ent[linked].astype(np.int64)
    memories = np.zeros((n_users, n_hops, 3, n_memory), dtype=np.int64)
    valid = np.zeros((n_users, n_hops), dtype=bool)
    for k in range(n_hops):
        h, r, t, found = _sample_hop(seed_user, seed_ent, indptr, rt, n_users, n_memory, rng,
                                     max_candidates)
        memories[:, k] = np.stack([h, r, t], 1)
        valid[:, k] = found
        if k > 0:  # no triple at this hop: reuse the previous hop's memories
            memories[~found, k] = memories[~found, k - 1]
            valid[~found, k] = valid[~found, k - 1]
        users = np.flatnonzero(valid[:, k])
        seed_user = np.repeat(users, n_memory)
        seed_ent = memories[users, k, 2].reshape(-1)
    return memories, valid


@register_model("ripplenet", paper="Wang et al., CIKM 2018 (RippleNet)")
class RippleNet(Model):
    """RippleNet: attention over each user's ripple sets (Eq. 3-6), CE + KGE + L2 loss."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "ctr"}
    ctr_output: ClassVar[bool] = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        item_entity: np.ndarray | None = None,
        train_pairs: np.ndarray | None = None,
        triples: np.ndarray | None = None,
        dim: int = 16,
        n_hops: int = 2,
        n_memory: int = 32,
        kge_weight: float = 0.01,
        l2_weight: float = 1e-7,
        item_update: Literal["replace", "plus", "replace_transform", "plus_transform"] =
        "plus_transform",
        all_hops: bool = True,
        ripple_seed: int | None = None,
        score_chunk: int = 1 << 22,
        sampler: Literal["ctr", "pointwise"] = "ctr",
    ) -> None:
        super().__init__()
        kge_weight, l2_weight = float(kge_weight), float(l2_weight)
        if dim <= 0 or n_hops <= 0 or n_memory <= 0:
            raise ConfigError("dim, n_hops and n_memory must be positive")
        if kge_weight < 0 or l2_weight < 0:
            raise ConfigError("kge_weight and l2_weight must be non-negative")
        if sampler not in ("ctr", "pointwise"):
            raise ConfigError(f"sampler must be 'ctr' or 'pointwise', got {sampler!r}")
        self.task_samplers = {"rec": sampler}  # this model's choice (instance attribute)
        if item_update not in ITEM_UPDATES:
            raise ConfigError(f"item_update must be one of {', '.join(ITEM_UPDATES)}, "
                              f"got {item_update!r}")
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        self.dim, self.n_hops, self.n_memory = dim, n_hops, n_memory
        self.kge_weight, self.l2_weight = kge_weight, l2_weight
        self.item_update, self.all_hops = item_update, bool(all_hops)
        self.score_chunk = int(score_chunk)
        item_entity = (np.arange(n_items) if item_entity is None
                       else np.asarray(item_entity, np.int64))
        if item_entity.shape != (n_items,):
            raise ConfigError("item_entity needs one entry per item")
        pairs = (np.zeros((0, 2), np.int64) if train_pairs is None
                 else np.asarray(train_pairs, np.int64).reshape(-1, 2))
        triples = (np.zeros((0, 3), np.int64) if triples is None
                   else np.asarray(triples, np.int64).reshape(-1, 3))
        if ripple_seed is None:  # the run seed reaches here through torch's generator
            ripple_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        memories, valid = build_ripple_sets(pairs, item_entity, triples, n_users, n_entities,
                                            n_hops, n_memory, int(ripple_seed))
        unlinked = item_entity < 0
        item_row = item_entity.copy()
        item_row[unlinked] = n_entities + np.arange(int(unlinked.sum()))
        # persistent: a reloaded model keeps the sets it was trained with
        self.register_buffer("memories", torch.from_numpy(memories))
        self.register_buffer("valid", torch.from_numpy(valid))
        self.register_buffer("item_row", torch.from_numpy(item_row), persistent=False)

        self.entity_emb = nn.Embedding(n_entities + int(unlinked.sum()), dim)
        self.relation_emb = nn.Parameter(torch.empty(max(n_relations, 1), dim, dim))
        self.transform = nn.Parameter(torch.empty(dim, dim))
        nn.init.xavier_uniform_(self.entity_emb.weight)
        nn.init.xavier_uniform_(self.relation_emb.view(-1, dim, dim))
        nn.init.xavier_uniform_(self.transform)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> RippleNet:
        return cls(n_users=dataset.n_users, n_items=dataset.n_items,
                   n_entities=dataset.n_entities, n_relations=dataset.n_relations,
                   item_entity=dataset.item_entity, train_pairs=training_pairs(train),
                   triples=training_triples(dataset), **kwargs)

    # ---- propagation --------------------------------------------------------------------
    def _memories(self, users: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(h, R, t, Rh, mask)`` of the users' memories: ``(B, H, M, d)`` embeddings,
        ``R (B, H, M, d, d)``, ``Rh = R h`` and ``mask (B, H, M)``."""
        mem = self.memories[users]
        ent = self.entity_emb.weight
        h, t = ent[mem[:, :, 0]], ent[mem[:, :, 2]]
        rel = self.relation_emb[mem[:, :, 1]]
        rh = torch.einsum("bhmij,bhmj->bhmi", rel, h)
        mask = self.valid[users].unsqueeze(-1).expand(-1, -1, self.n_memory)
        return h, rel, t, rh, mask

    def _update(self, v: Tensor, o: Tensor) -> Tensor:
        mode = self.item_update
        v = o if mode.startswith("replace") else v + o
        return v @ self.transform if mode.endswith("transform") else v

    @staticmethod
    def _softmax(logits: Tensor, mask: Tensor) -> Tensor:
        """Softmax over the last axis restricted to ``mask`` (all-masked rows give 0)."""
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, -1) * mask

    def _logits(self, users: Tensor, items: Tensor) -> tuple[Tensor, tuple]:
        h, rel, t, rh, mask = self._memories(users)
        v = self.entity_emb(self.item_row[items])
        u = torch.zeros_like(v)
        for k in range(self.n_hops):
            p = self._softmax((rh[:, k] * v.unsqueeze(1)).sum(-1), mask[:, k])  # Eq. 3
            o = (p.unsqueeze(-1) * t[:, k]).sum(1)  # Eq. 4
            u = u + o if self.all_hops or k == self.n_hops - 1 else u
            v = self._update(v, o)
        return (u * v).sum(-1), (h, rel, t, mask)

    # ---- loss ---------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"ripplenet has no task {task!r}")
        logits, (h, rel, t, mask) = self._logits(batch["users"], batch["items"])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"].float())
        m = mask.to(h.dtype)
        if self.kge_weight > 0:
            hrt = torch.einsum("bhmi,bhmij,bhmj->bhm", h, rel, t)
            per_hop = (torch.sigmoid(hrt) * m).sum((0, 2)) / m.sum((0, 2)).clamp(min=1)
            loss = loss - self.kge_weight * per_hop.sum()
        if self.l2_weight > 0:
            sq = h.square().sum(-1) + t.square().sum(-1) + rel.square().sum((-1, -2))
            loss = loss + self.l2_weight * (sq * m).sum()
        return loss

    # ---- scoring ------------------------------------------------------------------------
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self._logits(users, items)[0]

    def score_all(self, users: Tensor) -> Tensor:
        """Every item for each user: the users' ``R h`` are computed once and the
        attention of all items runs as batched products, chunked over users."""
        v_all = self.entity_emb(self.item_row[torch.arange(self.n_items, device=users.device)])
        step = max(1, self.score_chunk // max(self.n_items * self.n_memory, 1))
        out = []
        for s in range(0, len(users), step):
            _, _, t, rh, mask = self._memories(users[s:s + step])
            v = v_all.unsqueeze(0).expand(len(rh), -1, -1)  # (b, N, d)
            u = torch.zeros_like(v)
            for k in range(self.n_hops):
                logits = torch.einsum("bmd,bnd->bnm", rh[:, k], v)
                p = self._softmax(logits, mask[:, k].unsqueeze(1))
                o = torch.einsum("bnm,bmd->bnd", p, t[:, k])
                u = u + o if self.all_hops or k == self.n_hops - 1 else u
                v = self._update(v, o)
            out.append((u * v).sum(-1))
        return torch.cat(out) if out else v_all.new_zeros((0, self.n_items))
