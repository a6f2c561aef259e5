"""JNSKR (Chen et al., SIGIR 2020): jointly non-sampling learning for KG-enhanced
recommendation (``shared/papers/003_*``).

Both tasks learn from *all* unobserved data with weighted squared losses whose
all-pairs parts are rewritten through ``d x d`` Gram matrices, so that no
``|U| x |V|`` or ``|B| x |R| x |E|`` tensor is ever built.

KG part (Section 2.1), DistMult ``g(h, r, t) = e_h^T diag(r) e_t`` on a batch ``B`` of heads,
weight ``w+`` on observed triples and ``w-_h`` on every triple of head ``h`` (Eq. 5)::

    L_KG = sum_{(h,r,t) observed, h in B} ((w+ - w-_h) g^2 - 2 w+ g)
         + sum_{i,j} (sum_r r_i r_j) (sum_{h in B} w-_h e_hi e_hj) (sum_{t in E} e_ti e_tj)

Item representation (Section 2.2)::

    q_v = e_v + sum_{(v,r,t) in N_v} alpha_(r,t) e_t
    alpha*_(r,t) = h_a^T sigma(W1 e_t + W2 r + b),   alpha = softmax over N_v

CF part (Eq. 9), ``y(u, v) = h^T (p_u * q_v)`` on a batch ``B`` of items, weight ``c+`` on
observed pairs and ``c-_v`` on every pair of item ``v``::

    L_CF = sum_{v in B, u in U+_v} ((c+ - c-_v) y^2 - 2 c+ y)
         + sum_{i,j} (h_i h_j) (sum_{u in U} p_ui p_uj) (sum_{v in B} c-_v q_vi q_vj)

Both equal the plain weighted squared loss ``sum w (target - score)^2`` over every pair
(triple) of the batch minus a parameter-free constant (``tests/test_jnskr.py`` checks
values and gradients against a loop over every pair and triple).
Joint objective (Section 2.3): ``L_CF + mu L_KG + lambda ||Theta||^2``, mini-batch Adagrad.

Readings taken where the summary paper is silent, following the authors' TensorFlow code
(github.com/chenchongthu/JNSKR, ``Model/JNSKR.py`` and ``Model/utility/our_helper.py``):

* ``sigma`` is ReLU; the attention width is ``dim // 2``; the paper's ``W1 e_t + W2 r``
  is kept (the authors' code uses one matrix on ``r * e_t``).
* Positive weights ``c+ = w+ = 1``; negative weights either ``uniform`` (``c-_v =
  c0 / n_items``, ``w-_h = c1 / n_heads``) or ``popularity`` (authors' default):
  ``c-_v = c0 f_v^p / sum_j f_j^p`` with ``f_v`` the item's training interactions and
  ``p = 0.5``; likewise ``w-_h = c1 n_h^p / sum_k n_k^p`` with ``n_h`` the triples headed by
  ``h`` (as the authors' ``caculate_weight`` since its fix of 2020-09-17, commit c9c2bca;
  before it the KG weights' numerator used the *item* frequencies). ``c0``/``c1`` are thus
  the total negative weight, not a per-item one: the authors' ``c0 = 300, c1 = 600``
  (Amazon-book; Yelp2018 ``1000, 7000``) are totals over 24,915 (45,538) items.
* The paper's "node dropout of rho on q_v" is applied as in the authors' code: element-wise
  dropout on ``e_v`` (``dropout``, keep 0.8 there) and on the attentive sum ``e_{N_v}``
  (``kg_dropout``, keep 0.7), the latter also on the head embeddings of ``L_KG``.
* ``lambda ||Theta||^2`` covers the full user, entity and relation tables (``l2``) and the
  attention parameters (``l2_attention``) at every step, as the authors' code; the
  prediction vector ``h`` is not regularised (as there). Note ``tf.nn.l2_loss`` halves the
  sum of squares, so their ``[1e-5, 1]`` is ``l2 = 5e-6, l2_attention = 0.5`` here.
* ``kg_heads`` -- which entities head the triples of ``L_KG``. ``"all"`` (the paper's
  Eq. 5 read literally, our earlier default): every entity that heads a triple, in
  batches of heads of their own (``heads``/``kg_*`` fields of the batch). ``"items"``
  (the authors' code, which feeds the batch's items as KG heads): only the batch's items
  (those aligned with an entity that heads a triple) with all their triples; triples
  headed by non-item entities are never trained. The head weights ``w-_h`` are then
  normalised over the item heads only.
* ``item_table`` -- ``"shared"`` (the paper's single ``e_v``): items and KG entities
  share one embedding table; an item without an aligned entity gets a row of its own that
  is not an entity (it is not a tail candidate). ``"separate"`` (the authors' code:
  ``iid_W`` for items, ``eid_W`` for entities): an item table used by the CF part (``e_v``
  of ``q_v``) and as the KG head of the item's triples, and an entity table for tails and
  neighbours ``N_v`` (an item's entity appearing as a tail uses the entity table). It
  needs ``kg_heads: items`` (a non-item head would have no item row).
* ``N_v`` is capped at ``max_triples`` triples per item, a subset drawn once with
  ``triple_seed`` (the authors truncate at the 99.99th percentile of the counts). ``L_KG``
  always uses every triple.
* Training settings of the authors' ``Main_JNSKR.py`` (the presets' defaults, each with its
  source in the preset's ``notes``): 256 items per step, Adagrad lr 0.05 (their initial
  accumulator 1e-8, torch's 0), dimension 64, dropout keep 0.8/0.7, ``coefficient [1,
  0.01]`` (``mu``), at most 101 epochs, test Recall@10 every 10 epochs with a stop after 5
  evaluations without gain and the best test epoch reported; the presets select on
  validation Recall@20 instead. Their batches hold only items that have both training
  users *and* KG triples (``get_train_instances``), so an item without triples is never
  trained; here every item with a training positive is.

Training task ``"rec"`` with the ``"jnskr"`` sampler: each batch carries ``batch_size``
items that have training positives, a share of the items without any (they still enter the
all-pairs term), the positive users of those items as flat ``(pos_index, pos_users)``
lists, and a share of the KG heads with their triples as ``(kg_index, kg_relations,
kg_tails)`` (used by ``kg_heads: all``; with ``items`` the model takes the batch items'
own triples instead). One epoch visits every item and every head exactly once, and its number of
steps depends on the observed data only, not on the number of unobserved pairs. A batch
item with no observed pair and ``c-_v = 0`` (popularity weights) adds exactly 0 and is
skipped. Cost of a step: ``O((|U| + |E| + |R| + |B| + |H|) d^2)`` for the Gram terms plus
``O((|pairs| + |triples of B, H|) d)``; every user and entity row gets a gradient at every
step (the Gram terms), each table is gathered once per step
(``benchmarks/jnskr_scaling.py`` times it).
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
from kgrec.models.nonsampling import (  # noqa: F401  (negative_weights: public here too)
    cf_whole_data_loss,
    gram,
    gram_sum,
    negative_weights,
    pointwise_part,
)

# ---------------------------------------------------------------------------------------
# efficient whole-data losses (the CF part is shared with ENMF: models/nonsampling.py)


def kg_whole_data_loss(entities: Tensor, relations: Tensor, heads: Tensor, w_neg: Tensor,
                       kg_index: Tensor, kg_relations: Tensor, kg_tails: Tensor,
                       w_pos: float = 1.0) -> Tensor:
    """Eq. 5 for a batch of heads (DistMult).

    Args:
        entities: ``(n_entities, d)`` every entity embedding (the tail candidates).
        relations: ``(n_relations, d)`` every relation embedding.
        heads: ``(H, d)`` embeddings of the batch heads.
        w_neg: ``(H,)`` negative weights ``w-_h``.
        kg_index: ``(T,)`` observed triples: the head's row in ``heads``.
        kg_relations, kg_tails: ``(T, d)`` observed triples: relation and tail embeddings.
        w_pos: positive weight ``w+``.
    """
    g = (heads[kg_index] * kg_relations * kg_tails).sum(-1)
    return pointwise_part(g, w_neg[kg_index], w_pos) + gram_sum(
        gram(relations), gram(heads, w_neg), gram(entities))


# ---------------------------------------------------------------------------------------
# data structures


def csr_by(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, order)``: ``order`` sorts rows by key (stably), ``indptr`` slices it."""
    order = np.argsort(keys, kind="stable")
    indptr = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_keys), out=indptr[1:])
    return indptr, order


def expand_csr(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``rows[k]`` all its CSR positions: returns ``(k per entry, position)``."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    total = int(counts.sum())
    which = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return which, np.repeat(starts, counts) + offsets


def training_triples(dataset: KGDataset) -> np.ndarray:
    """The KG triples training may see (the KG split's train part when there is one),
    duplicates removed."""
    triples = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
    return np.unique(np.asarray(triples, np.int64).reshape(-1, 3), axis=0)


def training_pairs(split: Split) -> np.ndarray:
    """Distinct observed ``(user, item)`` pairs of the training split."""
    pos = split.train[split.train[:, 2] == 1, :2]
    return np.unique(np.asarray(pos, np.int64).reshape(-1, 2), axis=0)


def item_triple_table(triples: np.ndarray, item_entity: np.ndarray, n_entities: int,
                      max_triples: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """Padded ``(n_items, T)`` relation and tail ids of each item's triples ``N_v`` and
    their ``(n_items,)`` counts. An item with more than ``max_triples`` keeps a subset
    drawn with ``seed`` (deterministic); ``T`` is the largest kept count (at least 1)."""
    n_items = len(item_entity)
    rng = np.random.default_rng(seed)
    key = rng.random(len(triples))
    order = np.lexsort((key, triples[:, 0]))  # by head, random within head
    srt = triples[order]
    indptr = np.zeros(n_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(srt[:, 0], minlength=n_entities), out=indptr[1:])
    linked = item_entity >= 0
    ent = np.where(linked, item_entity, 0)
    counts = np.where(linked, indptr[ent + 1] - indptr[ent], 0)
    if max_triples is not None:
        counts = np.minimum(counts, max_triples)
    width = max(int(counts.max()) if n_items else 0, 1)
    idx = indptr[ent][:, None] + np.arange(width)[None, :]
    valid = np.arange(width)[None, :] < counts[:, None]
    idx = np.where(valid, idx, 0)
    if len(srt) == 0:
        zeros = np.zeros((n_items, width), dtype=np.int64)
        return zeros, zeros.copy(), counts.astype(np.int64)
    rel = np.where(valid, srt[idx, 1], 0)
    tail = np.where(valid, srt[idx, 2], 0)
    return rel.astype(np.int64), tail.astype(np.int64), counts.astype(np.int64)


# ---------------------------------------------------------------------------------------
# sampler


@register_sampler("jnskr")
class JNSKRSampler(Sampler):
    """Batches of items (CF part) and of KG heads (KG part) for JNSKR's joint step.

    Fields: ``items (B,)``, ``pos_index``/``pos_users`` (each observed pair of a batch
    item: the item's row in ``items`` and the user), ``heads (H,)`` and
    ``kg_index``/``kg_relations``/``kg_tails`` (each triple of a batch head).

    ``batch_size`` counts the items that have training positives (the authors' code trains
    on those only); the items without any, and the KG heads, are spread evenly over the
    same number of batches, so one epoch visits every item and every head once.
    """

    def __init__(self, n_items: int, pairs: np.ndarray, triples: np.ndarray, n_entities: int,
                 batch_size: int, shuffle: bool = True) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.batch_size, self.shuffle = batch_size, shuffle
        self.data: dict[str, Tensor] = {}
        self.pair_indptr, order = csr_by(pairs[:, 1], n_items)
        self.pair_users = pairs[order, 0]
        has_pos = np.diff(self.pair_indptr) > 0
        self.active = np.flatnonzero(has_pos)
        self.passive = np.flatnonzero(~has_pos)
        self.kg_indptr, order = csr_by(triples[:, 0], n_entities)
        self.kg_rt = triples[order, 1:]
        self.heads = np.flatnonzero(np.diff(self.kg_indptr) > 0)
        self.n = len(self.active)

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int,
                  shuffle: bool = True, **_: Any) -> JNSKRSampler:
        return cls(dataset.n_items, training_pairs(split), training_triples(dataset),
                   dataset.n_entities, batch_size, shuffle)

    def __len__(self) -> int:
        return max(1, math.ceil(self.n / self.batch_size))

    def examples(self, batch: dict[str, Tensor]) -> int:
        """The batch's observed ``(user, item)`` pairs: one epoch counts every training pair
        once, as one epoch of a sampled model (BPRMF) does, so ``train.max_examples`` caps
        both alike (a JNSKR step also sees every unobserved pair of its items)."""
        return len(batch["pos_users"])

    def shard(self, batch: dict[str, Tensor], rank: int, world: int) -> tuple[dict[str, Tensor], float]:
        """Contiguous slices of the batch's items and of its heads, with their observed
        pairs and triples (see :meth:`Sampler.shard`)."""
        return shard_groups(batch, [("items", "pos_index", ["pos_users"]),
                                    ("heads", "kg_index", ["kg_relations", "kg_tails"])], rank, world)

    def epoch(self, seed: int) -> Iterator[dict[str, Tensor]]:
        rng = np.random.default_rng(seed)
        perm = rng.permutation if self.shuffle else (lambda a: a)
        n_batches = len(self)
        active = perm(self.active)
        passive = np.array_split(perm(self.passive), n_batches)
        heads = np.array_split(perm(self.heads), n_batches)
        for b in range(n_batches):
            items = np.concatenate([active[b * self.batch_size:(b + 1) * self.batch_size],
                                    passive[b]])
            pos_index, at = expand_csr(self.pair_indptr, items)
            kg_index, kat = expand_csr(self.kg_indptr, heads[b])
            out = {
                "items": items, "pos_index": pos_index, "pos_users": self.pair_users[at],
                "heads": heads[b], "kg_index": kg_index,
                "kg_relations": self.kg_rt[kat, 0], "kg_tails": self.kg_rt[kat, 1],
            }
            yield {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64))
                   for k, v in out.items()}


# ---------------------------------------------------------------------------------------
# model


@register_model("jnskr", paper="Chen et al., SIGIR 2020 (JNSKR)")
class JNSKR(Model):
    """JNSKR: whole-data CF (Eq. 9) + mu * whole-data DistMult KG loss (Eq. 5) + L2."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "jnskr"}
    batch_reduction: ClassVar[str] = "sum"  # Eq. 5 and 9 sum over the batch's items/heads

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        item_entity: np.ndarray | None = None,
        triples: np.ndarray | None = None,
        train_pairs: np.ndarray | None = None,
        dim: int = 64,
        attention_dim: int | None = None,
        weighting: Literal["popularity", "uniform"] = "popularity",
        c0: float = 300.0,
        c1: float = 600.0,
        weight_exponent: float = 0.5,
        c_pos: float = 1.0,
        w_pos: float = 1.0,
        mu: float = 0.01,
        l2: float = 5e-6,
        l2_attention: float = 0.5,
        dropout: float = 0.2,
        kg_dropout: float = 0.3,
        max_triples: int | None = 64,
        triple_seed: int = 0,
        init_std: float = 0.01,
        kg_heads: Literal["all", "items"] = "all",
        item_table: Literal["shared", "separate"] = "shared",
    ) -> None:
        super().__init__()
        if dim <= 0 or (attention_dim is not None and attention_dim <= 0):
            raise ConfigError("dim and attention_dim must be positive")
        if min(c0, c1, c_pos, w_pos, mu, l2, l2_attention) < 0:
            raise ConfigError("weights, mu and l2 terms must be non-negative")
        if not (0 <= dropout < 1 and 0 <= kg_dropout < 1):
            raise ConfigError("dropout rates must be in [0, 1)")
        if max_triples is not None and max_triples < 1:
            raise ConfigError("max_triples must be positive (or null for no cap)")
        if kg_heads not in ("all", "items"):
            raise ConfigError(f"kg_heads must be 'all' or 'items', got {kg_heads!r}")
        if item_table not in ("shared", "separate"):
            raise ConfigError(f"item_table must be 'shared' or 'separate', got {item_table!r}")
        if item_table == "separate" and kg_heads != "items":
            raise ConfigError("item_table 'separate' needs kg_heads 'items' (the authors' "
                              "code: only items head KG triples, from the item table)")
        self.kg_heads, self.item_table = kg_heads, item_table
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        self.dim = dim
        self.c_pos, self.w_pos, self.mu = float(c_pos), float(w_pos), float(mu)
        self.l2, self.l2_attention = float(l2), float(l2_attention)
        self.dropout, self.kg_dropout = float(dropout), float(kg_dropout)

        item_entity = (np.arange(n_items) if item_entity is None
                       else np.asarray(item_entity, np.int64))
        triples = (np.zeros((0, 3), np.int64) if triples is None
                   else np.unique(np.asarray(triples, np.int64).reshape(-1, 3), axis=0))
        pairs = (np.zeros((0, 2), np.int64) if train_pairs is None
                 else np.unique(np.asarray(train_pairs, np.int64).reshape(-1, 2), axis=0))
        if item_entity.shape != (n_items,):
            raise ConfigError("item_entity needs one entry per item")
        unlinked = item_entity < 0
        item_row = item_entity.copy()
        item_row[unlinked] = n_entities + np.arange(int(unlinked.sum()))
        rel, tail, count = item_triple_table(triples, item_entity, n_entities, max_triples,
                                             triple_seed)
        item_freq = np.bincount(pairs[:, 1], minlength=n_items)
        head_freq = np.bincount(triples[:, 0], minlength=n_entities)
        c_neg = negative_weights(item_freq, c0, weighting, weight_exponent)
        head_ok = head_freq > 0
        if kg_heads == "items":
            is_item = np.zeros(n_entities, bool)
            is_item[item_entity[item_entity >= 0]] = True
            head_ok &= is_item
            head_freq = np.where(head_ok, head_freq, 0)
        w_neg = negative_weights(head_freq, c1, weighting, weight_exponent, head_ok)
        # every triple by head (kg_heads "items": an item's triples, uncapped)
        kg_indptr, order = csr_by(triples[:, 0], n_entities)
        self.register_buffer("kg_indptr", torch.from_numpy(kg_indptr), persistent=False)
        self.register_buffer("kg_rt", torch.from_numpy(np.ascontiguousarray(triples[order, 1:])),
                             persistent=False)
        self.register_buffer("item_entity", torch.from_numpy(item_entity), persistent=False)

        dtype = torch.get_default_dtype()
        self.register_buffer("item_row", torch.from_numpy(item_row), persistent=False)
        self.register_buffer("item_rel", torch.from_numpy(rel), persistent=False)
        self.register_buffer("item_tail", torch.from_numpy(tail), persistent=False)
        self.register_buffer("item_count", torch.from_numpy(count), persistent=False)
        self.register_buffer("c_neg", torch.from_numpy(c_neg).to(dtype), persistent=False)
        self.register_buffer("w_neg", torch.from_numpy(w_neg).to(dtype), persistent=False)

        att = attention_dim or max(dim // 2, 1)
        self.user_emb = nn.Embedding(n_users, dim)
        separate = item_table == "separate"
        self.entity_emb = nn.Embedding(n_entities + (0 if separate else int(unlinked.sum())),
                                       dim)
        self.item_emb = nn.Embedding(n_items, dim) if separate else None
        self.relation_emb = nn.Embedding(max(n_relations, 1), dim)
        for emb in self._tables():
            nn.init.trunc_normal_(emb.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
        self.h = nn.Parameter(torch.full((dim,), 0.01))  # authors' constant init
        self.att_w1 = nn.Parameter(torch.empty(att, dim))
        self.att_w2 = nn.Parameter(torch.empty(att, dim))
        for w in (self.att_w1, self.att_w2):
            nn.init.trunc_normal_(w, std=math.sqrt(2.0 / (att + dim)))
        self.att_b = nn.Parameter(torch.zeros(att))
        self.att_h = nn.Parameter(torch.full((att,), 0.01))
        self._cache: tuple[tuple, Tensor] | None = None

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> JNSKR:
        return cls(n_users=dataset.n_users, n_items=dataset.n_items,
                   n_entities=dataset.n_entities, n_relations=dataset.n_relations,
                   item_entity=dataset.item_entity, triples=training_triples(dataset),
                   train_pairs=training_pairs(train), **kwargs)

    def _tables(self) -> list[nn.Embedding]:
        extra = [] if self.item_emb is None else [self.item_emb]
        return [self.user_emb, self.entity_emb, *extra, self.relation_emb]

    def _own_emb(self, items: Tensor) -> Tensor:
        """``e_v`` of ``items``: the item table's row or the shared table's."""
        if self.item_emb is not None:
            return self.item_emb(items)
        return self.entity_emb(self.item_row[items])

    def item_heads(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``kg_heads: items``: the items among ``items`` whose entity heads triples, with
        all their triples: ``(head_items, kg_index, kg_relations, kg_tails)`` (ids)."""
        ent = self.item_entity[items]
        linked = ent >= 0
        ent = ent.clamp(min=0)
        start = self.kg_indptr[ent]
        count = torch.where(linked, self.kg_indptr[ent + 1] - start, 0)
        has = count > 0
        head_items, start, count = items[has], start[has], count[has]
        kg_index = torch.repeat_interleave(torch.arange(len(head_items), device=items.device),
                                           count)
        offset = torch.arange(len(kg_index), device=items.device) - torch.repeat_interleave(
            torch.cumsum(count, 0) - count, count)
        at = torch.repeat_interleave(start, count) + offset
        return head_items, kg_index, self.kg_rt[at, 0], self.kg_rt[at, 1]

    # ---- item representation (Section 2.2) ----------------------------------------
    def _triples_of(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Padded ``(B, T)`` relation and tail ids of the items' triples and their mask;
        ``T`` is the largest count in the batch."""
        count = self.item_count[items]
        width = max(int(count.max()) if len(items) else 0, 1)
        mask = torch.arange(width, device=items.device) < count.unsqueeze(1)
        return self.item_rel[items, :width], self.item_tail[items, :width], mask

    def _alpha(self, t_emb: Tensor, r_emb: Tensor, mask: Tensor) -> Tensor:
        """Softmax over each item's own triples of ``h_a^T relu(W1 e_t + W2 r + b)``."""
        hidden = F.relu(t_emb @ self.att_w1.T + r_emb @ self.att_w2.T + self.att_b)
        logits = (hidden @ self.att_h).masked_fill(~mask, torch.finfo(t_emb.dtype).min)
        return torch.softmax(logits, dim=-1) * mask

    def _q(self, e_v: Tensor, t_emb: Tensor, r_emb: Tensor, mask: Tensor) -> Tensor:
        """``q_v = e_v + sum alpha e_t`` with dropout on both parts in training mode."""
        e_n = (self._alpha(t_emb, r_emb, mask).unsqueeze(-1) * t_emb).sum(1)
        return (F.dropout(e_v, self.dropout, self.training)
                + F.dropout(e_n, self.kg_dropout, self.training))

    def attention(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(alpha, relations, tails, mask)`` over each item's padded triples, ``(B, T)``;
        ``alpha`` is a softmax over the item's own triples, 0 on padding."""
        rel, tail, mask = self._triples_of(items)
        alpha = self._alpha(self.entity_emb(tail), self.relation_emb(rel), mask)
        return alpha, rel, tail, mask

    def item_repr(self, items: Tensor) -> Tensor:
        """``q_v = e_v + e_{N_v}`` of ``items``, ``(B, d)``."""
        rel, tail, mask = self._triples_of(items)
        return self._q(self._own_emb(items), self.entity_emb(tail),
                       self.relation_emb(rel), mask)

    def all_item_repr(self, chunk: int = 4096) -> Tensor:
        """``q`` of every item; cached between parameter updates outside training.

        The cache key includes a value fingerprint of every parameter: fused optimisers
        (``fused=True``, used by the trainer) update in place without bumping
        ``Tensor._version``, so version counters alone gave stale validation scores.
        """
        cacheable = not self.training and not torch.is_grad_enabled()
        key = self._cache_key() if cacheable else None
        if cacheable and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        ids = torch.arange(self.n_items, device=self.h.device)
        q = torch.cat([self.item_repr(ids[s:s + chunk]) for s in range(0, self.n_items, chunk)]) \
            if self.n_items else self.h.new_zeros((0, self.dim))
        if cacheable:
            self._cache = (key, q)
        return q

    def _cache_key(self) -> tuple:
        params = list(self.parameters())
        stats = torch.stack([torch.stack([p.sum(), p.abs().sum()]) for p in params])
        return (tuple(p._version for p in params), tuple(stats.flatten().tolist()),
                str(self.h.device))

    def train(self, mode: bool = True) -> JNSKR:
        self._cache = None  # parameters are about to change
        return super().train(mode)

    # ---- losses ---------------------------------------------------------------------
    def regularisation(self) -> Tensor:
        emb = sum(e.weight.square().sum() for e in self._tables())
        att = sum(w.square().sum() for w in (self.att_w1, self.att_w2, self.att_b, self.att_h))
        return self.l2 * emb + self.l2_attention * att

    def losses(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(L_CF, L_KG)`` of a ``"jnskr"`` batch (Eq. 9 and Eq. 5), without L2.

        Each embedding table is read with one gather per step, so that its dense gradient
        is built once (the Gram terms make every row's gradient non-zero anyway).
        """
        items, pos_index = batch["items"], batch["pos_index"]
        if self.kg_heads == "items":  # the batch's items head L_KG (before the CF filter)
            head_items, kg_index, kg_rel_ids, kg_tail_ids = self.item_heads(items)
            heads = self.item_entity[head_items]
        else:
            heads, kg_index = batch["heads"], batch["kg_index"]
            kg_rel_ids, kg_tail_ids = batch["kg_relations"], batch["kg_tails"]
        # an item with no observed pair and c-_v = 0 (popularity weights, no training
        # positive) adds exactly 0 to Eq. 9: leave it out
        has_pos = torch.bincount(pos_index, minlength=len(items)) > 0
        keep = has_pos | (self.c_neg[items] > 0)
        if not bool(keep.all()):
            pos_index = (torch.cumsum(keep, 0) - 1)[pos_index]
            items = items[keep]
        rel, tail, mask = self._triples_of(items)
        ent = self.entity_emb.weight
        if self.item_emb is None:
            own, own_heads = self.item_row[items], heads
        else:  # e_v and the item heads from the item table, tails from the entity table
            own = own_heads = items[:0]
        n_b, n_t, n_h = len(own), tail.numel(), len(own_heads)
        rows = ent[torch.cat([own, tail.reshape(-1), own_heads, kg_tail_ids])]
        t_emb = rows[n_b:n_b + n_t].view(*tail.shape, ent.shape[1])
        e_t = rows[n_b + n_t + n_h:]
        if self.item_emb is None:
            e_v, e_h = rows[:n_b], rows[n_b + n_t:n_b + n_t + n_h]
        else:
            both = self.item_emb.weight[torch.cat([items, head_items])]
            e_v, e_h = both[:len(items)], both[len(items):]
        rel_all = self.relation_emb.weight
        r_rows = rel_all[torch.cat([rel.reshape(-1), kg_rel_ids])]
        r_emb, kg_r = r_rows[:n_t].view(*rel.shape, rel_all.shape[1]), r_rows[n_t:]

        q = self._q(e_v, t_emb, r_emb, mask)
        cf = cf_whole_data_loss(self.user_emb.weight, self.h, q, self.c_neg[items], pos_index,
                                self.user_emb.weight[batch["pos_users"]], self.c_pos)
        e_h = F.dropout(e_h, self.kg_dropout, self.training)
        entities = ent if ent.shape[0] == self.n_entities else ent[:self.n_entities]
        relations = rel_all if rel_all.shape[0] == self.n_relations else \
            rel_all[:self.n_relations]
        kg = kg_whole_data_loss(entities, relations, e_h, self.w_neg[heads], kg_index,
                                kg_r, e_t, self.w_pos)
        return cf, kg

    def cf_loss(self, batch: dict[str, Tensor]) -> Tensor:
        return self.losses(batch)[0]

    def kg_loss(self, batch: dict[str, Tensor]) -> Tensor:
        return self.losses(batch)[1]

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"jnskr has no task {task!r}")
        cf, kg = self.losses(batch)
        # distributed steps: the batch sums scaled by loss_scale (Model.batch_reduction)
        return batch.get("loss_scale", 1.0) * (cf + self.mu * kg) + self.regularisation()

    # ---- scoring --------------------------------------------------------------------
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        if not self.training and not torch.is_grad_enabled():
            q = self.all_item_repr()[items]
        else:
            q = self.item_repr(items)
        return (self.user_emb(users) * q) @ self.h

    def score_all(self, users: Tensor) -> Tensor:
        return (self.user_emb(users) * self.h) @ self.all_item_repr().T

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        """DistMult ``g(h, r, t)`` for every entity ``t``, ``(B, n_entities)``, from the
        entity table (with ``item_table: separate`` an item's KG-head row is the item
        table's, so this scores an item entity by its tail row)."""
        q = self.entity_emb(heads) * self.relation_emb(relations)
        return q @ self.entity_emb.weight[:self.n_entities].T

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        """DistMult is symmetric in ``h`` and ``t``: ``g(h, r, t)`` for every ``h``."""
        return self.score_tails(tails, relations)

    # ---- explanation ----------------------------------------------------------------
    @torch.no_grad()
    def explain(self, user: int, items: Tensor | np.ndarray | list[int]) -> list[dict[str, Any]]:
        """Attention weights of each item's triples ``(v, r, t)`` (Section 2.2).

        The attention of Eq. 2-3 depends on the item only, so ``user`` (taken for the
        models' common ``explain(user, items)`` interface) does not change the answer.

        Returns one dict per item: ``item``, ``entity`` (the item's entity, ``-1`` if
        none), ``relations``, ``tails`` and ``weights`` (NumPy arrays over the item's own
        triples, at most ``max_triples`` of them; the weights sum to one, or are empty for
        an item without triples).
        """
        items = torch.as_tensor(items).reshape(-1).to(device=self.h.device, dtype=torch.long)
        alpha, rel, tail, mask = self.attention(items)
        ent = self.item_row[items]
        out = []
        for k in range(len(items)):
            m = mask[k]
            e = int(ent[k])
            out.append({
                "item": int(items[k]),
                "entity": e if e < self.n_entities else -1,
                "relations": rel[k][m].cpu().numpy(),
                "tails": tail[k][m].cpu().numpy(),
                "weights": alpha[k][m].cpu().numpy(),
            })
        return out
