"""HKRM: hierarchical knowledge-based recommendation model (paper 004, Sections 2-3).

A user is represented by a *query* q (their training-positive items), a candidate by the
*target* t. Both get an item-level vector (Eq. 1-2) and an attribute-level vector built
from a proximity distribution over attribute fields (Eq. 3-7); the click logit is the
item-attribute duet (Eq. 10) and training adds a distance term between the two
distributions on relevant pairs (Eq. 8-9) to the cross-entropy (Eq. 12-13).

No public implementation exists and the PDF's formulas are garbled; the readings taken:

* **Fields (Section 3.1, Eq. 3).** A field a_j is a KG relation r with triples
  ``(item, r, value)`` whose tail ``value`` is not an item entity (attribute entities vs
  item entities, Section 1). Triples with the item as tail are ignored (on ``book``
  relation 0 is exactly the inverse of relation 1). Field-based filtering keeps the
  relations covering at least ``min_coverage`` of the items. o_j^e is the sum (Eq. 3) or,
  with ``field_agg="mean"``, the mean of the embeddings of item e's values in a_j; an item
  without a value in a_j has o_j^e = 0 and a_j is *masked* for it.
* **Relation operator (Eq. 4-5).** "Inspired by DistMult": R_j = diag(r_j) with a
  d-dimensional relation embedding r_j (Section 3.3 gives relations an embedding size).
* **Item level (Eq. 1-2).** s_q = sum_i alpha_i e_i, alpha = softmax_i(p_i / |q|) over the
  query's items, with one learnable scalar p_i per item (shared by all queries, uniform
  init); s_t = e_t. Items are their own entity rows (every item gets a row even when it is
  not aligned to a KG entity).
* **Query field vectors (Eq. 4).** The numerator sums over the query's items i = 1..m:
  ``query_agg="sum"`` (the paper's reading, default) takes it literally, o_j^q =
  sum_i o_j^{e_i}, so the logit (o_j^q)^T R_j s_q is the sum of the query items' field
  logits; ``"mean"`` scales it by 1/|q| like Eq. 2. p(a_j|q) = softmax_j over the fields
  present in at least one query item; p_hat(a_j|t) the same with o_j^t and s_t (Eq. 5).
  Masked fields have probability 0; an empty query or an item without fields gives the
  all-zero vector. Evidence (``book``, seed 0, validation, 2026-11-30): after training the
  query logits' rms is 0.77 under the mean and 8.1 under the sum; valid AUC 0.7302 (mean)
  vs 0.7321 (sum), both with the hinge L_a.
* **Attribute level (Eq. 6-7).** A = W2 tanh(W1 P + b1) + b2 (one tanh hidden layer, linear
  output of size d), the same MLP for P(A|q) and P_hat(A|t).
* **Duet (Eq. 10-11).** rel = s_q.s_t + s_q.A_t + A_q.s_t + A_q.A_t = (s_q + A_q).(s_t + A_t),
  which ``score_all`` uses as one matrix product; ``score`` returns rel as a logit.
* **Distance loss (Eq. 8-9), ``kl_form``.** Eq. 9 writes gamma_qt KL(P(A|q) || P_hat(A|t)) =
  gamma_qt sum_j [p(a_j|q) log 1/p_hat(a_j|t) - p(a_j|q) log 1/p(a_j|q)] and, "omitting
  some constants", keeps L_a = -sum_qt gamma_qt sum_j p(a_j|q) log p_hat(a_j|t): a
  cross-entropy on relevant pairs only (gamma_qt = 0 for the others, so negatives are
  neither pulled nor pushed). ``"cross_entropy"`` is that last line (the paper's reading,
  default); unlike KL, whose minimum is any pair of equal distributions (uniform ones
  included), it is minimised by *peaked* agreeing distributions, so it sharpens P(A|q)
  and P_hat(A|t) instead of flattening them. ``"kl"`` keeps the entropy term
  (gamma_qt KL); ``"hinge"`` adds (1 - gamma) max(0, margin - KL) for negatives and
  ``"contrastive"`` the same hinge on the cross-entropy (a contrastive reading of "make
  the related knowledge representation more similar than the irrelevant one"; the
  paper's formula has no negative term). All are computed on the fields unmasked in both
  (renormalised there; rows without a common field add 0) and averaged over the batch.
  Evidence (``book``, seed 0, validation AUC, query_agg sum, 2026-11-30): cross_entropy
  0.7335, hinge 0.7321, contrastive 0.7321, none (woKL) 0.7319; cross_entropy with
  lambda_1 = 3: 0.7326. On ``book``'s KG (4 fields kept; ~70% of items have only field 1,
  so their P_hat(A|t) is one-hot whatever the logits) the proximities carry little: at
  lambda_1 = 1 zeroing every logit moves valid AUC by +0.0004 (the mean |score change| is
  0.19 of the scores' std), at lambda_1 = 3 it costs 0.018.
* **Loss (Eq. 12-13), ``l2_scope``.** Each step minimises the batch-mean binary
  cross-entropy + lambda_1 L_a + lambda_2 (||E||^2 + ||R||^2) over the whole entity and
  relation tables (``"table"``, default). Eq. 12 sums the cross-entropy over all N
  training rows, so the same objective per batch-mean step would divide the L2 term by N
  (``"eq12"``); with lambda_2 = 1e-5 that leaves almost no regularisation and overfits at
  once (``book`` valid AUC 0.7305 at epoch 1 vs 0.7335 for ``"table"``, seed 0), so
  lambda_2 is read as the weight per step. Entities that are neither items nor values of
  a kept field never enter a score, so they get no row.
* **The label must not be seen.** In training the target is removed from its own query, so
  every row's query is "the user's *other* training positives", exactly what a validation
  or test row sees (its query is all training positives, none of which is the row itself).
  ``balanced_query=True`` also drops one random query item from rows whose target is not in
  the query (negatives) so that |q| is the same for both labels; it breaks that equivalence
  and scored lower on ``book`` validation (AUC 0.724 vs 0.734), so it is off by default. On
  ``lastfm`` (seed 0, lr 0.01) it changes nothing (test AUC 0.8417 vs 0.8406): the model does
  not read the label from |q| (docs/results.md ``hkrm:lastfm-gap``).
  Queries longer than ``max_query`` keep a seeded random subset (fixed at build time).

Ablations (Table 3) via ``variant``: ``"attr"`` rel = A_q.A_t (with L_a), ``"item"``
rel = s_q.s_t (no attribute level, so no L_a), ``"wokl"`` the full model with lambda_1 = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model

VARIANTS = ("full", "attr", "item", "wokl")
KL_FORMS = ("hinge", "kl", "cross_entropy", "contrastive")
L2_SCOPES = ("table", "eq12")
_NEG = -1e9  # finite "minus infinity" for masked logits (keeps gradients NaN-free)


def attribute_fields(dataset: KGDataset, min_coverage: float = 0.01):
    """Fields and per-(item, field) value lists (Section 3.1, Eq. 3).

    Returns ``(relations, bag_ptr, bag_rows, n_attr)``: the kept relation ids (sorted),
    a CSR index over bags ``item * n_fields + j`` (``bag_ptr`` of length
    ``n_items * n_fields + 1``) into ``bag_rows``, the embedding rows of the attribute
    values (``n_items + k`` for the k-th attribute entity), and the number of attribute
    entities.
    """
    if not 0 <= min_coverage <= 1:
        raise ConfigError(f"min_coverage must be in [0, 1], got {min_coverage}")
    n_items = dataset.n_items
    ent_item = dataset.entity_items()
    kg = dataset.triples
    if len(kg):
        head_item = ent_item[kg[:, 0]]
        keep = (head_item >= 0) & (ent_item[kg[:, 2]] < 0)
        itv = np.unique(np.stack([head_item[keep], kg[keep, 1], kg[keep, 2]], 1), axis=0)
    else:
        itv = np.zeros((0, 3), dtype=np.int64)
    pairs = np.unique(itv[:, :2], axis=0)
    coverage = np.bincount(pairs[:, 1], minlength=dataset.n_relations) / max(n_items, 1)
    relations = np.flatnonzero((coverage >= min_coverage) & (coverage > 0))
    n_fields = len(relations)
    field_of = np.full(dataset.n_relations, -1, dtype=np.int64)
    field_of[relations] = np.arange(n_fields)
    itv = itv[field_of[itv[:, 1]] >= 0]
    attrs, attr_idx = np.unique(itv[:, 2], return_inverse=True)
    bags = itv[:, 0] * n_fields + field_of[itv[:, 1]]
    order = np.argsort(bags, kind="stable")
    counts = np.bincount(bags, minlength=n_items * n_fields)
    bag_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    bag_rows = (n_items + attr_idx.reshape(-1)[order]).astype(np.int64)
    return [int(r) for r in relations], bag_ptr, bag_rows, len(attrs)


def user_queries(train: np.ndarray, n_users: int, max_query: int = 64, seed: int = 0):
    """``int64 (n_users, L)`` training-positive items of each user, padded with ``-1``.

    A user with more than ``max_query`` positives keeps a random subset drawn with ``seed``
    (fixed for the run); items are sorted within a row. ``L = min(max_query, longest)``.
    """
    if max_query < 1:
        raise ConfigError(f"max_query must be >= 1, got {max_query}")
    pos = np.unique(train[train[:, 2] == 1, :2], axis=0)
    key = np.random.default_rng(seed).random(len(pos))
    order = np.lexsort((key, pos[:, 0]))
    pos = pos[order]
    counts = np.bincount(pos[:, 0], minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(pos)) - np.repeat(starts, counts)
    pos = pos[rank < max_query]
    pos = pos[np.lexsort((pos[:, 1], pos[:, 0]))]
    counts = np.bincount(pos[:, 0], minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(pos)) - np.repeat(starts, counts)
    out = np.full((n_users, max(1, int(counts.max(initial=0)))), -1, dtype=np.int64)
    out[pos[:, 0], rank] = pos[:, 1]
    return out


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the ``True`` entries of the last axis, 0 elsewhere (all-0 if none)."""
    p = torch.softmax(logits.masked_fill(~mask, _NEG), dim=-1)
    return p * mask


def masked_kl(logits_p: Tensor, logits_q: Tensor, mask: Tensor) -> Tensor:
    """Row-wise KL(softmax(logits_p) || softmax(logits_q)), both restricted to ``mask``.

    Rows without any ``True`` entry give 0.
    """
    lp = torch.log_softmax(logits_p.masked_fill(~mask, _NEG), dim=-1)
    lq = torch.log_softmax(logits_q.masked_fill(~mask, _NEG), dim=-1)
    kl = (lp.exp() * (lp - lq) * mask).sum(-1)
    return kl * mask.any(-1)


def masked_cross_entropy(logits_p: Tensor, logits_q: Tensor, mask: Tensor) -> Tensor:
    """Row-wise -sum_j p_j log q_j with p = softmax(logits_p), q = softmax(logits_q), both
    restricted to ``mask`` (Eq. 9's last line); rows without any ``True`` entry give 0."""
    lp = torch.log_softmax(logits_p.masked_fill(~mask, _NEG), dim=-1)
    lq = torch.log_softmax(logits_q.masked_fill(~mask, _NEG), dim=-1)
    return -(lp.exp() * lq * mask).sum(-1) * mask.any(-1)


@register_model("hkrm", paper="Hierarchical knowledge-based recommendation model (HKRM)")
class HKRM(Model):
    """HKRM for CTR prediction (``variant``: ``full``, ``attr``, ``item`` or ``wokl``).

    Args:
        n_users, n_items: sizes; items are embedding rows ``0..n_items-1``.
        n_attr_entities: attribute entities (rows ``n_items..``) of the kept fields.
        field_relations: KG relation id of each field.
        bag_ptr, bag_rows: CSR of each ``(item, field)``'s value rows (see
            :func:`attribute_fields`).
        query_items: padded training-positive items per user (see :func:`user_queries`).
        dim: entity / relation embedding size (50, Section 3.3).
        hidden: hidden units of the tanh MLP (default ``dim``).
        lambda_1, lambda_2: weights of L_a and of the L2 term (Eq. 13).
        kl_margin: margin of the negative-pair hinge (``kl_form`` hinge or contrastive).
        field_agg: ``"sum"`` (Eq. 3) or ``"mean"`` of a field's values.
        query_agg: ``"sum"`` (Eq. 4 as written) or ``"mean"`` of the query items' field
            vectors.
        kl_form: L_a's reading of Eq. 9: ``"cross_entropy"`` (the paper's last line),
            ``"kl"``, ``"hinge"`` or ``"contrastive"`` (see the module docstring).
        l2_scope: ``"table"`` (lambda_2 per step) or ``"eq12"`` (divided by ``n_train``).
        n_train: training rows N (``build`` sets it), used by ``l2_scope="eq12"``.
        balanced_query: in training, also drop one random query item from rows whose
            target is not in the query.
    """

    tasks = ("rec",)
    task_samplers = {"rec": "ctr"}
    ctr_output = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_attr_entities: int,
        field_relations: list[int],
        bag_ptr: Tensor | np.ndarray,
        bag_rows: Tensor | np.ndarray,
        query_items: Tensor | np.ndarray,
        dim: int = 50,
        hidden: int | None = None,
        variant: str = "full",
        lambda_1: float = 1.0,
        lambda_2: float = 1e-5,
        kl_margin: float = 1.0,
        field_agg: str = "sum",
        query_agg: str = "sum",
        balanced_query: bool = False,
        temperature: float = 1.0,
        kl_form: str = "cross_entropy",
        l2_scope: str = "table",
        n_train: int = 1,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"unknown HKRM variant {variant!r}; choose from {VARIANTS}")
        if field_agg not in ("sum", "mean"):
            raise ConfigError(f"field_agg must be 'sum' or 'mean', got {field_agg!r}")
        if query_agg not in ("sum", "mean"):
            raise ConfigError(f"query_agg must be 'sum' or 'mean', got {query_agg!r}")
        if kl_form not in KL_FORMS:
            raise ConfigError(f"kl_form must be one of {KL_FORMS}, got {kl_form!r}")
        if l2_scope not in L2_SCOPES:
            raise ConfigError(f"l2_scope must be one of {L2_SCOPES}, got {l2_scope!r}")
        if n_train < 1:
            raise ConfigError(f"n_train must be >= 1, got {n_train}")
        if variant != "item" and not field_relations:
            raise ConfigError("HKRM: no attribute field passes the coverage filter; "
                              "lower min_coverage or use variant 'item'")
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.n_fields = len(field_relations)
        self.field_relations = [int(r) for r in field_relations]
        self.variant, self.field_agg, self.query_agg = variant, field_agg, query_agg
        self.lambda_1 = 0.0 if variant in ("wokl", "item") else float(lambda_1)
        self.lambda_2, self.kl_margin = float(lambda_2), float(kl_margin)
        self.balanced_query = bool(balanced_query)
        self.kl_form, self.l2_scope, self.n_train = kl_form, l2_scope, int(n_train)
        self.dim = dim
        if temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.register_buffer("bag_ptr", torch.as_tensor(bag_ptr, dtype=torch.long))
        self.register_buffer("bag_rows", torch.as_tensor(bag_rows, dtype=torch.long))
        self.register_buffer("query_items", torch.as_tensor(query_items, dtype=torch.long))
        if self.bag_ptr.numel() != self.n_items * self.n_fields + 1:
            raise ConfigError("bag_ptr must have n_items * n_fields + 1 entries")
        self.entity = nn.Embedding(self.n_items + int(n_attr_entities), dim)
        self.relation = nn.Parameter(torch.empty(max(self.n_fields, 1), dim))
        self.item_weight = nn.Parameter(torch.empty(self.n_items))  # p_i of Eq. 2
        h = hidden or dim
        self.mlp = nn.Sequential(nn.Linear(max(self.n_fields, 1), h), nn.Tanh(), nn.Linear(h, dim))
        nn.init.xavier_uniform_(self.entity.weight)
        nn.init.xavier_uniform_(self.relation)
        nn.init.uniform_(self.item_weight, 0.0, 1.0)
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, min_coverage: float = 0.01,
              max_query: int = 64, query_seed: int = 0, **kwargs: Any) -> HKRM:
        relations, bag_ptr, bag_rows, n_attr = attribute_fields(dataset, min_coverage)
        queries = user_queries(train.train, dataset.n_users, max_query, query_seed)
        kwargs.setdefault("n_train", max(len(train.train), 1))
        return cls(n_users=dataset.n_users, n_items=dataset.n_items, n_attr_entities=n_attr,
                   field_relations=relations, bag_ptr=bag_ptr, bag_rows=bag_rows,
                   query_items=queries, **kwargs)

    # ----------------------------------------------------------------- building blocks
    @property
    def uses_attributes(self) -> bool:
        return self.variant != "item"

    def field_vectors(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """o_j^e of Eq. 3 for ``items``: ``(N, n_fields, d)`` and the ``(N, n_fields)`` mask."""
        nf = self.n_fields
        bags = (items[:, None] * nf + torch.arange(nf, device=items.device)).reshape(-1)
        start = self.bag_ptr[bags]
        cnt = self.bag_ptr[bags + 1] - start
        offsets = torch.cumsum(cnt, 0) - cnt
        total = int(cnt.sum())
        idx = torch.repeat_interleave(start - offsets, cnt, output_size=total)
        rows = self.bag_rows[idx + torch.arange(total, device=items.device)]
        o = F.embedding_bag(rows, self.entity.weight, offsets, mode=self.field_agg)
        return o.view(len(items), nf, self.dim), (cnt > 0).view(len(items), nf)

    def proximity_logits(self, o: Tensor, s: Tensor) -> Tensor:
        """(o_j)^T diag(r_j) s / temperature for every field j (Eq. 4-5 before the softmax):
        ``(B, n_fields)``. The paper has no temperature (1.0)."""
        return (o * self.relation[: self.n_fields] * s[:, None, :]).sum(-1) / self.temperature

    def _query_mask(self, users: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor]:
        """Padded query items of ``users`` and their validity; with ``targets`` (training)
        the target, or one random item when the target is absent and ``balanced_query``,
        is removed."""
        q = self.query_items[users]
        valid = q >= 0
        if targets is not None:
            drop = valid & (q == targets[:, None])
            if self.balanced_query:
                need = ~drop.any(1) & valid.any(1)
                noise = torch.rand(q.shape, device=q.device).masked_fill(~valid, -1.0)
                pick = F.one_hot(noise.argmax(1), q.shape[1]).bool() & need[:, None]
                drop = drop | pick
            valid = valid & ~drop
        return q, valid

    def query_side(self, users: Tensor, targets: Tensor | None = None) -> dict[str, Tensor]:
        """s_q (Eq. 1-2) and, unless ``variant == "item"``, the field logits and mask (Eq. 4)."""
        q, valid = self._query_mask(users, targets)
        m = valid.sum(1)
        alpha = masked_softmax(self.item_weight[q.clamp(min=0)] / m.clamp(min=1)[:, None], valid)
        rows, cols = valid.nonzero(as_tuple=True)
        flat = q[rows, cols]
        offsets = torch.cumsum(m, 0) - m
        emb = self.entity.weight
        s = F.embedding_bag(flat, emb, offsets, mode="sum", per_sample_weights=alpha[rows, cols])
        out = {"s": s}
        if self.uses_attributes:
            uniq, inv = torch.unique(flat, return_inverse=True)
            o_u, has_u = self.field_vectors(uniq)
            nf, d = self.n_fields, self.dim
            scale = torch.ones_like(flat, dtype=emb.dtype)
            if self.query_agg == "mean":
                scale = 1.0 / m[rows].to(emb.dtype)
            o = F.embedding_bag(inv, o_u.reshape(-1, nf * d), offsets, mode="sum",
                                per_sample_weights=scale).view(-1, nf, d)
            cnt = F.embedding_bag(inv, has_u.to(emb.dtype), offsets, mode="sum")
            out["mask"] = cnt > 0
            out["logits"] = self.proximity_logits(o, s)
        return out

    def item_side(self, items: Tensor) -> dict[str, Tensor]:
        """s_t and, unless ``variant == "item"``, the field logits and mask (Eq. 5)."""
        s = self.entity.weight[items]
        out = {"s": s}
        if self.uses_attributes:
            o, mask = self.field_vectors(items)
            out["mask"] = mask
            out["logits"] = self.proximity_logits(o, s)
        return out

    def representation(self, side: dict[str, Tensor]) -> Tensor:
        """The vector whose dot products give the duet (Eq. 10): s + A, A, or s by variant."""
        if self.variant == "item":
            return side["s"]
        a = self.mlp(masked_softmax(side["logits"], side["mask"]))  # Eq. 6-7
        return a if self.variant == "attr" else side["s"] + a

    def kl_loss(self, qs: dict[str, Tensor], ts: dict[str, Tensor], labels: Tensor) -> Tensor:
        """L_a of Eq. 9 under ``kl_form`` (batch mean; see the module docstring)."""
        mask = qs["mask"] & ts["mask"]
        if self.kl_form in ("cross_entropy", "contrastive"):
            d = masked_cross_entropy(qs["logits"], ts["logits"], mask)
        else:
            d = masked_kl(qs["logits"], ts["logits"], mask)
        pos = labels * d
        if self.kl_form in ("hinge", "contrastive"):
            return (pos + (1 - labels) * F.relu(self.kl_margin - d) * mask.any(-1)).mean()
        return pos.mean()

    def l2(self) -> Tensor:
        """lambda_2's term of Eq. 13: ||E||^2 + ||R||^2 over the whole tables, divided by the
        number of training rows under ``l2_scope="eq12"``."""
        sq = self.entity.weight.pow(2).sum() + self.relation.pow(2).sum()
        return sq / self.n_train if self.l2_scope == "eq12" else sq

    # ----------------------------------------------------------------- Model interface
    def forward(self, batch: dict[str, Tensor], task: str = "rec") -> Tensor:
        if task != "rec":
            raise ConfigError(f"HKRM has no task {task!r}")
        users, items = batch["users"], batch["items"]
        labels = batch["labels"].to(self.entity.weight.dtype)
        qs, ts = self.query_side(users, targets=items), self.item_side(items)
        rel = (self.representation(qs) * self.representation(ts)).sum(-1)
        loss = F.binary_cross_entropy_with_logits(rel, labels)  # Eq. 11-12
        if self.lambda_1 > 0:
            loss = loss + self.lambda_1 * self.kl_loss(qs, ts, labels)
        return loss + self.lambda_2 * self.l2()  # Eq. 13

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        u = self.representation(self.query_side(users))
        v = self.representation(self.item_side(items))
        return (u * v).sum(-1)

    def item_representations(self, chunk: int = 8192) -> Tensor:
        """``(n_items, d)`` target vectors of every item."""
        dev = self.entity.weight.device
        return torch.cat([
            self.representation(self.item_side(torch.arange(a, min(a + chunk, self.n_items),
                                                            device=dev)))
            for a in range(0, self.n_items, chunk)
        ])

    def score_all(self, users: Tensor) -> Tensor:
        return self.representation(self.query_side(users)) @ self.item_representations().T

    @property
    def can_explain(self) -> bool:
        """HKRM-Item has no attribute level, hence no explanation."""
        return self.uses_attributes

    @torch.no_grad()
    def explain(self, user: int, items: Tensor | Sequence[int]) -> list[dict[str, Any]]:
        """Per item: the user's preference and the item's attribute-importance distributions
        over the fields (Fig. 5), and the click probability."""
        if not self.uses_attributes:
            raise ConfigError("HKRM-Item has no attribute level to explain")
        dev = self.entity.weight.device
        i = torch.as_tensor(items).reshape(-1).to(device=dev, dtype=torch.long)
        qs, ts = self.query_side(torch.tensor([int(user)], device=dev)), self.item_side(i)
        pq = masked_softmax(qs["logits"], qs["mask"])[0].tolist()
        pt = masked_softmax(ts["logits"], ts["mask"]).tolist()
        rel = (self.representation(qs) * self.representation(ts)).sum(-1)
        prob = torch.sigmoid(rel).tolist()
        fields = list(self.field_relations)
        return [{"item": int(v), "fields": fields, "user_distribution": pq,
                 "item_distribution": pt[k], "probability": prob[k]}
                for k, v in enumerate(i.tolist())]
