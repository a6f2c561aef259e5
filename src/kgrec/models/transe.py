"""TransE (Bordes et al. 2013) and the machinery shared by the translational KG models.

KTUP (``shared/papers/002_*``) uses TransE, TransH and TransR as KG-completion baselines
(Section 6.2, Table 4) and TransH as its KG component (Section 3.2).

Shared training objective (KTUP Eq. 4): margin ranking ``[f(h, r, t) + gamma - f(h', r, t')]_+``
averaged over the batch, where ``f`` is the model's distance (L1 by default, as in the paper).
The ``"triples"`` sampler supplies one corrupted head and one corrupted tail per triple;
``corrupt`` picks how they are used (a documented choice, the paper only says "replacing
head entity or tail entity randomly"):

* ``"uniform"`` (default, the authors' code): per triple a fair coin picks the corrupted head
  or the corrupted tail;
* ``"bern"`` (TransH paper): the head is corrupted with probability ``tph / (tph + hpt)`` of
  the triple's relation (tails-per-head and heads-per-tail of the training triples);
* ``"both"``: both corruptions are used and the two hinge losses averaged.

Norm constraints are soft penalties added to the loss with weight ``soft_constraint``
(TransH Sec. 3 / the authors' ``normLoss``): the mean of ``[||e||^2 - 1]_+`` over the
entities of the batch (true and corrupted) and over the batch's relation vectors; models
add their own terms (TransH's orthogonality, TransR's projected norms). Embeddings are
Xavier-initialised and L2-normalised by row, as in the authors' code.

``score_tails``/``score_heads`` rank every entity by negative distance; pure KG models have
no user-item score (``score``/``score_all`` raise :class:`NotImplementedError`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model


def transe_distance(h: Tensor, r: Tensor, t: Tensor, norm: int = 1) -> Tensor:
    """Row-wise ``||h + r - t||_p`` over the last dimension (broadcasting allowed)."""
    return lp_norm(h + r - t, norm)


def lp_norm(x: Tensor, norm: int) -> Tensor:
    """``||x||_1`` (as ``|x|.sum``: about 3x faster on CPU than ``vector_norm(ord=1)``, the
    same gradient ``sign(x)``) or ``||x||_2`` over the last dimension."""
    return x.abs().sum(-1) if norm == 1 else torch.linalg.vector_norm(x, ord=norm, dim=-1)


def pairwise_distance(queries: Tensor, keys: Tensor, norm: int = 1) -> Tensor:
    """``(B, N)`` matrix of ``||queries[b] - keys[n]||_p`` without a ``(B, N, d)`` tensor."""
    return torch.cdist(queries.unsqueeze(0), keys.unsqueeze(0), p=float(norm),
                       compute_mode="donot_use_mm_for_euclid_dist").squeeze(0)


def init_embedding(n: int, dim: int, normalise: bool = True) -> nn.Embedding:
    """Xavier-uniform embedding table, rows L2-normalised (the authors' initialisation)."""
    emb = nn.Embedding(n, dim)
    nn.init.xavier_uniform_(emb.weight)
    if normalise:
        with torch.no_grad():
            emb.weight.copy_(F.normalize(emb.weight, p=2, dim=1))
    return emb


def norm_penalty(x: Tensor) -> Tensor:
    """Mean of ``[||x_k||_2^2 - 1]_+`` over rows (soft unit-ball constraint)."""
    return F.relu(x.pow(2).sum(-1) - 1.0).mean()


def relation_head_prob(triples: np.ndarray, n_relations: int) -> np.ndarray:
    """TransH "bern" probability of corrupting the head: ``tph / (tph + hpt)`` per relation."""
    out = np.full(n_relations, 0.5)
    if len(triples) == 0:
        return out
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    n_hr = np.bincount(np.unique(h * n_relations + r) % n_relations,
                       minlength=n_relations)  # distinct heads per relation
    n_tr = np.bincount(np.unique(t * n_relations + r) % n_relations,
                       minlength=n_relations)  # distinct tails per relation
    n_tri = np.bincount(np.unique(np.stack([h, r, t], 1), axis=0)[:, 1], minlength=n_relations)
    seen = n_tri > 0
    tph = np.where(seen, n_tri / np.maximum(n_hr, 1), 0.0)
    hpt = np.where(seen, n_tri / np.maximum(n_tr, 1), 0.0)
    out[seen] = tph[seen] / (tph[seen] + hpt[seen])
    return out


class TranslationalKGModel(Model):
    """Base of TransE/H/R: margin ranking loss, corruption choice, all-entity ranking.

    Subclasses implement :meth:`project` (entities seen by relation ``r``),
    :meth:`translation` (the relation's translation vector) and may add
    :meth:`constraint`.
    """

    tasks: ClassVar[tuple[str, ...]] = ("kg",)
    task_samplers: ClassVar[dict[str, str]] = {"kg": "triples"}

    def __init__(self, n_entities: int, n_relations: int, dim: int = 100, margin: float = 1.0,
                 norm: int = 1, corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None,
                 n_users: int = 0, n_items: int = 0) -> None:
        super().__init__()
        if norm not in (1, 2):
            raise ConfigError(f"norm must be 1 or 2, got {norm}")
        if corrupt not in ("uniform", "bern", "both"):
            raise ConfigError(f"corrupt must be uniform, bern or both, got {corrupt!r}")
        if dim <= 0 or margin < 0 or soft_constraint < 0:
            raise ConfigError("dim must be positive, margin and soft_constraint non-negative")
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        self.dim, self.margin, self.norm = dim, float(margin), norm
        self.corrupt, self.soft_constraint = corrupt, float(soft_constraint)
        self.entity_emb = init_embedding(n_entities, dim)
        hp = np.full(n_relations, 0.5) if head_prob is None else np.asarray(head_prob, float)
        self.register_buffer("head_prob", torch.as_tensor(hp, dtype=torch.float32),
                             persistent=False)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        if kwargs.get("corrupt") == "bern":
            triples = dataset.kg_split["train"] if dataset.kg_split else dataset.triples
            kwargs["head_prob"] = relation_head_prob(triples, dataset.n_relations)
        return super().build(dataset, train, **kwargs)

    # --- model-specific parts -------------------------------------------------------------
    def project(self, e: Tensor, r: Tensor) -> Tensor:
        """Entity vectors ``e (..., d)`` as seen by relations ``r`` (broadcast index tensor)."""
        raise NotImplementedError

    def translation(self, r: Tensor) -> Tensor:
        raise NotImplementedError

    def constraint(self, r: Tensor) -> Tensor:
        """Extra soft constraints of the relations ``r`` of a batch."""
        return torch.zeros((), device=r.device)

    # --- shared -----------------------------------------------------------------------------
    def triple_distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """``f(h, r, t)`` of index tensors, shape ``(B,)``: lower means more plausible."""
        return self.rows_distance(self.entity_emb(h), r, self.entity_emb(t))

    def rows_distance(self, he: Tensor, r: Tensor, te: Tensor) -> Tensor:
        """``f`` of gathered head and tail rows ``he, te (B, d)`` and relation ids ``r``:
        ``||P_r(h - t) + r||``, one projection of the difference (every model's projection
        is linear, so ``P_r h - P_r t = P_r (h - t)``)."""
        return lp_norm(self.project(he - te, r) + self.translation(r), self.norm)

    def kg_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Margin ranking loss (Eq. 4) plus soft constraints, averaged over the batch.

        The entity rows of the batch (true and corrupted heads and tails) are gathered in
        one lookup: each lookup of an ``nn.Embedding`` costs a dense zero gradient of the
        whole table in backward, which made most of a KTUP step's time on 14,708 entities.
        """
        h, r, t = batch["heads"], batch["relations"], batch["tails"]
        nh, nt = batch["corrupt_heads"], batch["corrupt_tails"]
        if self.corrupt == "both":
            rows = self.entity_emb(torch.cat([h, t, nh, nt]))
            he, te, nhe, nte = rows.split(len(h))
            pos = self.rows_distance(he, r, te)
            hinge = 0.5 * (F.relu(pos + self.margin - self.rows_distance(nhe, r, te))
                           + F.relu(pos + self.margin - self.rows_distance(he, r, nte)))
        else:
            p = (self.head_prob[r] if self.corrupt == "bern"
                 else torch.full(h.shape, 0.5, device=h.device))
            head = torch.rand(h.shape, device=h.device) < p
            nh2, nt2 = torch.where(head, nh, h), torch.where(head, t, nt)
            rows = self.entity_emb(torch.cat([h, t, nh2, nt2]))
            he, te, nhe, nte = rows.split(len(h))
            pos = self.rows_distance(he, r, te)
            hinge = F.relu(pos + self.margin - self.rows_distance(nhe, r, nte))
        loss = hinge.mean()
        if self.soft_constraint > 0:
            reg = norm_penalty(rows) + norm_penalty(self.translation(r))
            loss = loss + self.soft_constraint * (reg + self.constraint(r))
        return loss

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "kg":
            raise ValueError(f"{type(self).__name__} has no task {task!r}")
        return self.kg_loss(batch)

    def _rank(self, anchors: Tensor, relations: Tensor, sign: float) -> Tensor:
        """Negative distances of ``anchor + sign * r`` to every projected entity, ``(B, N)``.

        Entities are projected once per distinct relation of the batch (a loop over
        relations, not over samples), and ``cdist`` avoids a ``(B, N, d)`` tensor.
        """
        out = torch.empty(len(anchors), self.n_entities, device=anchors.device)
        all_e = self.entity_emb.weight
        for rel in torch.unique(relations):
            rows = torch.nonzero(relations == rel).squeeze(1)
            rr = rel.expand(len(rows))
            q = self.project(self.entity_emb(anchors[rows]), rr) + sign * self.translation(rr)
            keys = self.project(all_e, rel)  # a 0-dim relation broadcasts over entities
            out[rows] = -pairwise_distance(q, keys, self.norm)
        return out

    def score_tails(self, heads: Tensor, relations: Tensor) -> Tensor:
        """``-f(h, r, e)`` for every entity ``e``, shape ``(B, n_entities)``."""
        return self._rank(heads, relations, 1.0)

    def score_heads(self, relations: Tensor, tails: Tensor) -> Tensor:
        """``-f(e, r, t)`` for every entity ``e``, shape ``(B, n_entities)``."""
        return self._rank(tails, relations, -1.0)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{self.name} is a knowledge-graph model without user-item scores; evaluate it "
            "with the kg protocol (eval.protocols: [kg])")

    def score_all(self, users: Tensor) -> Tensor:
        return self.score(users, users)


@register_model("transe", paper="Bordes et al., NIPS 2013 (TransE)")
class TransE(TranslationalKGModel):
    """TransE: ``f(h, r, t) = ||h + r - t||_p``."""

    def __init__(self, n_entities: int, n_relations: int, dim: int = 100, margin: float = 1.0,
                 norm: int = 1, corrupt: Literal["uniform", "bern", "both"] = "uniform",
                 soft_constraint: float = 1.0, head_prob: np.ndarray | None = None,
                 n_users: int = 0, n_items: int = 0) -> None:
        super().__init__(n_entities, n_relations, dim, margin, norm, corrupt, soft_constraint,
                         head_prob, n_users, n_items)
        self.relation_emb = init_embedding(n_relations, dim)

    def project(self, e: Tensor, r: Tensor) -> Tensor:
        return e

    def translation(self, r: Tensor) -> Tensor:
        return self.relation_emb(r)

    def _rank(self, anchors: Tensor, relations: Tensor, sign: float) -> Tensor:
        q = self.entity_emb(anchors) + sign * self.relation_emb(relations)
        return -pairwise_distance(q, self.entity_emb.weight, self.norm)
