"""KGAT (Wang et al., KDD 2019): knowledge graph attention network, in pure PyTorch.

JNSKR's strongest baseline (``shared/papers/003_*``, Table 2). The KGAT paper is not in
``shared/papers``; equations are cited from the KDD 2019 paper and, where the authors'
TensorFlow code (github.com/xiangwang1223/knowledge_graph_attention_network,
``Model/KGAT.py``, ``Model/utility/loader_kgat.py``) fills a gap, the code was followed.
No graph library: the propagation is one ``torch.sparse.mm`` per layer.

Collaborative knowledge graph (CKG, Section 2): one node per KG entity (an item is its
aligned entity; an item without one gets a node of its own) and per user; edges are the
training interactions as relation ``Interact`` (id 0), the training KG triples (relation
``r`` has id ``r + 1``) and the inverse of every edge (ids ``R + 1 .. 2R + 1``), as the
code's ``_get_relational_adj_list``.

* Embedding layer, TransR (Eq. 1-2): ``g(h, r, t) = ||W_r e_h + e_r - W_r e_t||^2``,
  ``L_KG = mean -ln sigmoid(g(h, r, t') - g(h, r, t))`` over CKG triples with one tail
  ``t'`` corrupted uniformly among the entity nodes (not a known ``(h, r, t')``), as the
  code samples them.
* Attention (Eq. 4-5): ``pi(h, r, t) = (W_r e_t)^T tanh(W_r e_h + e_r)`` on the layer-0
  embeddings, softmax over every edge of ``h``. As in the code, the weights are not
  back-propagated: they are recomputed from the current parameters at the start of every
  epoch (:meth:`on_epoch_start`, called by the trainer) and kept in the ``attention``
  buffer (saved with the model, so that a reloaded model scores as it was selected).
* Propagation (Eq. 3, 8-10): ``e_N = sum_t pi(h, r, t) e_t`` and the bi-interaction
  aggregator ``e^(l) = LeakyReLU(W1 (e + e_N)) + LeakyReLU(W2 (e * e_N))`` (with biases, as
  the code), message dropout after each layer, ``layers = [64, 32, 16]``.
* Prediction (Eq. 11-12): ``e* = e^(0) || e^(1) || ... || e^(L)``, the layer outputs
  l2-normalised before the concatenation (the code's ``norm_embeddings``), ``y = e_u*^T e_i*``.
* CF loss (Eq. 13): BPR on the final representations. Both losses add ``l2`` times the
  mean over the batch of half the squared norms of their vectors (Eq. 14's
  ``lambda ||Theta||^2`` as the code applies it: ``tf.nn.l2_loss / batch_size``).
* Training alternates the two losses (Algorithm: ``rec`` steps on ``L_CF`` and ``kg``
  steps on ``L_KG``; the code runs a whole CF pass, then a whole KG pass, per epoch;
  here ``train.schedule`` sets the interleaving). The code's optional BPRMF pre-training
  is not done.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import PairSet, Sampler, register_sampler, sample_excluding
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.bprmf import bpr_loss
from kgrec.models.jnskr import csr_by, expand_csr, training_pairs, training_triples

INTERACT = 0


class CKG:
    """The collaborative knowledge graph of a dataset and its training split.

    Attributes: ``edges`` ``int64 (E, 3)`` rows ``(head, relation, tail)`` sorted by head,
    ``item_node`` ``(n_items,)``, ``user_offset`` (user ``u`` is node ``user_offset + u``),
    ``n_nodes``, ``n_entity_nodes`` (entities and items: the corrupted-tail candidates),
    ``n_relations`` (``2 (R + 1)``).
    """

    def __init__(self, n_users: int, n_entities: int, n_relations: int,
                 item_entity: np.ndarray, pairs: np.ndarray, triples: np.ndarray) -> None:
        item_entity = np.asarray(item_entity, np.int64)
        unlinked = item_entity < 0
        self.item_node = item_entity.copy()
        self.item_node[unlinked] = n_entities + np.arange(int(unlinked.sum()))
        self.n_entity_nodes = n_entities + int(unlinked.sum())
        self.user_offset = self.n_entity_nodes
        self.n_nodes = self.n_entity_nodes + n_users
        self.n_kg_relations = n_relations
        self.n_relations = 2 * (n_relations + 1)
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        triples = np.asarray(triples, np.int64).reshape(-1, 3)
        u = pairs[:, 0] + self.user_offset
        i = self.item_node[pairs[:, 1]]
        inter = np.stack([u, np.full(len(u), INTERACT), i], 1)
        kg = np.stack([triples[:, 0], triples[:, 1] + 1, triples[:, 2]], 1)
        forward = np.concatenate([inter, kg])
        inverse = np.stack([forward[:, 2], forward[:, 1] + n_relations + 1, forward[:, 0]], 1)
        self.edges = np.unique(np.concatenate([forward, inverse]), axis=0)

    @classmethod
    def of(cls, dataset: KGDataset, split: Split) -> CKG:
        return cls(dataset.n_users, dataset.n_entities, dataset.n_relations,
                   dataset.item_entity, training_pairs(split), training_triples(dataset))

    def relation_name(self, r: int, names: list[str] | None = None) -> str:
        """Readable name of CKG relation ``r`` (``interact``, a KG relation, ``~`` inverse)."""
        inv = r > self.n_kg_relations
        base = r - self.n_kg_relations - 1 if inv else r
        name = "interact" if base == INTERACT else (
            names[base - 1] if names is not None and base - 1 < len(names) else str(base - 1))
        return ("~" if inv else "") + name


@register_sampler("ckg_triples")
class CKGTripleSampler(Sampler):
    """CKG triples ``(h, r, t)`` with a corrupted tail ``t'`` among the entity nodes such
    that ``(h, r, t')`` is not an edge (KGAT's ``_generate_train_A_batch``)."""

    def __init__(self, ckg: CKG, batch_size: int) -> None:
        e = torch.from_numpy(ckg.edges)
        super().__init__({"heads": e[:, 0], "relations": e[:, 1], "tails": e[:, 2]}, batch_size)
        self.n_rel, self.n_cand = ckg.n_relations, ckg.n_entity_nodes
        self.known = PairSet(ckg.edges[:, 0] * ckg.n_relations + ckg.edges[:, 1],
                             ckg.edges[:, 2], ckg.n_nodes)

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int,
                  **_: Any) -> CKGTripleSampler:
        return cls(CKG.of(dataset, split), batch_size)

    def extra(self, batch, rng):
        key = batch["heads"].numpy() * self.n_rel + batch["relations"].numpy()
        neg = sample_excluding(rng, key, self.n_cand, self.known)
        return {**batch, "corrupt_tails": torch.from_numpy(neg)}


@register_model("kgat", paper="Wang et al., KDD 2019 (KGAT)")
class KGAT(Model):
    """KGAT: attentive embedding propagation on the CKG, BPR + TransR, alternating."""

    tasks: ClassVar[tuple[str, ...]] = ("rec", "kg")
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr", "kg": "ckg_triples"}

    def __init__(self, n_users: int, n_items: int, n_entities: int, n_relations: int,
                 ckg: CKG | None = None, dim: int = 64, kge_dim: int = 64,
                 layers: list[int] | tuple[int, ...] = (64, 32, 16),
                 mess_dropout: float | list[float] = 0.1, l2: float = 1e-5,
                 kg_l2: float | None = None, attention_chunk: int = 1 << 16,
                 relation_names: list[str] | None = None) -> None:
        super().__init__()
        layers = [int(x) for x in layers]
        drops = [float(mess_dropout)] * len(layers) if isinstance(mess_dropout, (int, float)) \
            else [float(x) for x in mess_dropout]
        l2 = float(l2)
        kg_l2 = l2 if kg_l2 is None else float(kg_l2)
        if dim <= 0 or kge_dim <= 0 or min(layers, default=1) <= 0:
            raise ConfigError("dim, kge_dim and layers must be positive")
        if len(drops) != len(layers) or not all(0 <= p < 1 for p in drops):
            raise ConfigError("mess_dropout: one rate in [0, 1) per layer (or one number)")
        if l2 < 0 or kg_l2 < 0:
            raise ConfigError("l2 and kg_l2 must be non-negative")
        if ckg is None:
            ckg = CKG(n_users, n_entities, n_relations, np.arange(n_items),
                      np.zeros((0, 2), np.int64), np.zeros((0, 3), np.int64))
        self.ckg = ckg
        self.relation_names = relation_names
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        self.l2, self.kg_l2, self.drops = l2, kg_l2, drops
        self.attention_chunk = int(attention_chunk)
        edges = torch.from_numpy(ckg.edges)
        self.register_buffer("edge_head", edges[:, 0].contiguous(), persistent=False)
        self.register_buffer("edge_rel", edges[:, 1].contiguous(), persistent=False)
        self.register_buffer("edge_tail", edges[:, 2].contiguous(), persistent=False)
        self.register_buffer("item_node", torch.from_numpy(ckg.item_node), persistent=False)
        deg = torch.bincount(edges[:, 0], minlength=ckg.n_nodes).clamp(min=1)
        # uniform 1/|N_h| until the first update (the code starts from per-relation
        # normalised adjacencies); then Eq. 4-5 every epoch
        self.register_buffer("attention", (1.0 / deg[edges[:, 0]]).to(torch.get_default_dtype()))

        self.node_emb = nn.Embedding(ckg.n_nodes, dim)
        self.rel_emb = nn.Embedding(ckg.n_relations, kge_dim)
        self.rel_proj = nn.Parameter(torch.empty(ckg.n_relations, dim, kge_dim))
        for w in (self.node_emb.weight, self.rel_emb.weight):
            nn.init.xavier_uniform_(w)
        nn.init.xavier_uniform_(self.rel_proj.view(-1, kge_dim))
        widths = [dim, *layers]
        self.w_sum = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.w_bi = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        for lin in (*self.w_sum, *self.w_bi):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self._adj: tuple[int, Tensor] | None = None

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> KGAT:
        return cls(n_users=dataset.n_users, n_items=dataset.n_items,
                   n_entities=dataset.n_entities, n_relations=dataset.n_relations,
                   ckg=CKG.of(dataset, train), relation_names=dataset.relation_names, **kwargs)

    # ---- attention (Eq. 4-5) ------------------------------------------------------------
    @torch.no_grad()
    def attention_logits(self) -> Tensor:
        """``pi(h, r, t)`` of every CKG edge (Eq. 4), computed relation by relation."""
        e = self.node_emb.weight
        out = e.new_empty(len(self.edge_head))
        order = torch.argsort(self.edge_rel, stable=True)
        counts = torch.bincount(self.edge_rel, minlength=self.ckg.n_relations).tolist()
        start = 0
        for r, n in enumerate(counts):
            for s in range(start, start + n, self.attention_chunk):
                idx = order[s:min(s + self.attention_chunk, start + n)]
                w = self.rel_proj[r]
                h = e[self.edge_head[idx]] @ w
                t = e[self.edge_tail[idx]] @ w
                out[idx] = (t * torch.tanh(h + self.rel_emb.weight[r])).sum(-1)
            start += n
        return out

    @torch.no_grad()
    def update_attention(self) -> None:
        """Recompute the softmax of Eq. 5 over each head's edges into ``attention``."""
        logits = self.attention_logits()
        n = self.ckg.n_nodes
        mx = torch.full((n,), -torch.inf, dtype=logits.dtype, device=logits.device)
        mx = mx.scatter_reduce(0, self.edge_head, logits, reduce="amax")
        ex = torch.exp(logits - mx[self.edge_head])
        den = torch.zeros(n, dtype=logits.dtype, device=logits.device).index_add_(
            0, self.edge_head, ex)
        self.attention.copy_(ex / den[self.edge_head])

    def on_epoch_start(self, epoch: int) -> None:
        """Trainer hook: the attention of this epoch, from the current parameters (the
        first epoch keeps the initial uniform weights, as the code's first epoch keeps its
        initial adjacency)."""
        if epoch > 0:
            self.update_attention()

    def adjacency(self) -> Tensor:
        """The sparse attentive adjacency ``A[h, t] = sum_r pi(h, r, t)``."""
        version = (self.attention.data_ptr(), self.attention._version)
        if self._adj is None or self._adj[0] != version:
            idx = torch.stack([self.edge_head, self.edge_tail])
            n = self.ckg.n_nodes
            adj = torch.sparse_coo_tensor(idx, self.attention, (n, n),
                                          check_invariants=False).coalesce()
            self._adj = (version, adj)
        return self._adj[1]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._adj = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ---- propagation (Eq. 3, 8-11) ------------------------------------------------------
    def layer(self, k: int, e: Tensor, e_n: Tensor) -> Tensor:
        """Bi-interaction aggregator of layer ``k`` (Eq. 8)."""
        return (F.leaky_relu(self.w_sum[k](e + e_n), 0.2)
                + F.leaky_relu(self.w_bi[k](e * e_n), 0.2))

    def propagate(self) -> Tensor:
        """``e*`` of every node (Eq. 11), ``(n_nodes, dim + sum(layers))``."""
        adj = self.adjacency()
        e = self.node_emb.weight
        outs = [e]
        for k in range(len(self.w_sum)):
            e = self.layer(k, e, torch.sparse.mm(adj, e))
            e = F.dropout(e, self.drops[k], self.training)
            outs.append(F.normalize(e, dim=1))
        return torch.cat(outs, 1)

    def user_node(self, users: Tensor) -> Tensor:
        return users + self.ckg.user_offset

    # ---- losses -------------------------------------------------------------------------
    def cf_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Eq. 13 (BPR on ``e*``) plus the L2 term of the batch's representations."""
        rep = self.propagate()
        u = rep[self.user_node(batch["users"])]
        ip, in_ = rep[self.item_node[batch["pos_items"]]], rep[self.item_node[batch["neg_items"]]]
        loss = bpr_loss((u * ip).sum(-1), (u * in_).sum(-1))
        if self.l2 > 0:
            loss = loss + self.l2 * 0.5 * (u.square() + ip.square() + in_.square()).sum(-1).mean()
        return loss

    def transr(self, heads: Tensor, relations: Tensor, *tails: Tensor) -> list[Tensor]:
        """``g(h, r, t) = ||W_r e_h + e_r - W_r e_t||^2`` (Eq. 1) for each tensor of
        ``tails``, computed as ``||W_r (e_h - e_t) + e_r||^2``, one matrix product per
        relation of the batch (no ``(B, d, k)`` gather of the ``W_r``)."""
        e_h, e_r = self.node_emb(heads), self.rel_emb(relations)
        diff = torch.cat([e_h - self.node_emb(t) for t in tails])  # (n_tails * B, d)
        rel = relations.repeat(len(tails))
        order = torch.argsort(rel)
        counts = torch.bincount(rel, minlength=self.rel_proj.shape[0]).tolist()
        parts = [chunk @ self.rel_proj[r]
                 for r, chunk in enumerate(torch.split(diff[order], counts)) if counts[r]]
        if not parts:
            return [e_h.new_zeros(0) for _ in tails]
        proj = diff.new_empty(len(rel), self.rel_proj.shape[2]).index_copy(
            0, order, torch.cat(parts))
        g = (proj + e_r.repeat(len(tails), 1)).square().sum(-1)
        return list(g.split(len(heads)))

    def kg_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Eq. 2 plus the L2 term of the batch's embeddings."""
        h, r, t, tn = batch["heads"], batch["relations"], batch["tails"], batch["corrupt_tails"]
        g_pos, g_neg = self.transr(h, r, t, tn)
        loss = -F.logsigmoid(g_neg - g_pos).mean()
        if self.kg_l2 > 0:
            sq = sum(x.square().sum(-1) for x in (self.node_emb(h), self.rel_emb(r),
                                                  self.node_emb(t), self.node_emb(tn)))
            loss = loss + self.kg_l2 * 0.5 * sq.mean()
        return loss

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task == "rec":
            return self.cf_loss(batch)
        if task == "kg":
            return self.kg_loss(batch)
        raise ValueError(f"kgat has no task {task!r}")

    # ---- scoring ------------------------------------------------------------------------
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        rep = self.propagate()
        return (rep[self.user_node(users)] * rep[self.item_node[items]]).sum(-1)

    def score_all(self, users: Tensor) -> Tensor:
        rep = self.propagate()
        return rep[self.user_node(users)] @ rep[self.item_node].T

    # ---- explanation --------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, user: int, items: Tensor | np.ndarray | list[int], max_hops: int = 3,
                top: int = 5) -> list[dict[str, Any]]:
        """Attention-weighted CKG paths from ``user`` to each of ``items`` (Section 4.5).

        A path ``u -r1-> n1 -r2-> n2 ... -> i`` of at most ``max_hops`` edges (e.g. ``u
        -interact-> item j -author-> entity e -~author-> item i``) is weighted by the
        product of the attention ``pi`` of its edges. Returns, per item, ``item`` and
        ``paths``: the ``top`` heaviest, each ``{"nodes": [(kind, id), ...], "relations":
        [name, ...], "weights": [pi, ...], "weight": product, "text": readable}`` with
        ``kind`` one of ``user``, ``item``, ``entity`` (ids in the dataset's numbering).
        """
        if not 1 <= max_hops <= 3:
            raise ConfigError("max_hops must be 1, 2 or 3")
        items_np = np.asarray(items, dtype=np.int64).reshape(-1)
        if len(items_np) and (items_np.min() < 0 or items_np.max() >= self.n_items):
            raise ConfigError(f"item ids must be in [0, {self.n_items})")
        if not 0 <= int(user) < self.n_users:
            raise ConfigError(f"user id must be in [0, {self.n_users})")
        head = self.edge_head.cpu().numpy()
        rel = self.edge_rel.cpu().numpy()
        tail = self.edge_tail.cpu().numpy()
        att = self.attention.double().cpu().numpy()
        indptr, _ = csr_by(head, self.ckg.n_nodes)  # edges are sorted by head already
        targets = self.ckg.item_node[items_np]
        # paths as (edge ids per hop), grown hop by hop from the user node
        frontier = [np.arange(indptr[user + self.ckg.user_offset],
                              indptr[user + self.ckg.user_offset + 1])[:, None]]
        found: list[np.ndarray] = []
        for hop in range(1, max_hops + 1):
            paths = frontier[-1]
            ends = tail[paths[:, -1]]
            found.append(paths[np.isin(ends, targets)])
            if hop == max_hops:
                break
            if hop + 1 == max_hops:  # only ends with an edge into a target go on
                keep = np.isin(ends, head[np.isin(tail, targets)])
                paths, ends = paths[keep], ends[keep]
            which, pos = expand_csr(indptr, ends)
            nxt = np.concatenate([paths[which], pos[:, None]], 1)
            if hop + 1 == max_hops:  # last hop: keep only edges that reach a target
                nxt = nxt[np.isin(tail[nxt[:, -1]], targets)]
            frontier.append(nxt)
        out = []
        for i, node in zip(items_np.tolist(), targets.tolist(), strict=True):
            cands = []
            for paths in found:
                hit = paths[tail[paths[:, -1]] == node]
                if len(hit):
                    w = att[hit].prod(1)
                    for k in np.argsort(-w, kind="stable")[:top]:
                        cands.append((float(w[k]), hit[k]))
            cands.sort(key=lambda c: -c[0])
            out.append({"item": i, "paths": [self._path(p, w, head, rel, tail, att)
                                              for w, p in cands[:top]]})
        return out

    def _node(self, n: int) -> tuple[str, int]:
        if n >= self.ckg.user_offset:
            return ("user", n - self.ckg.user_offset)
        items = np.flatnonzero(self.ckg.item_node == n)
        if len(items):
            return ("item", int(items[0]))
        return ("entity", n)

    def _path(self, edges: np.ndarray, weight: float, head, rel, tail, att) -> dict[str, Any]:
        nodes = [self._node(int(head[edges[0]]))] + [self._node(int(tail[e])) for e in edges]
        rels = [self.ckg.relation_name(int(rel[e]), self.relation_names) for e in edges]
        text = f"{nodes[0][0]} {nodes[0][1]}" + "".join(
            f" -{r}-> {kind} {i}" for r, (kind, i) in zip(rels, nodes[1:], strict=True))
        return {"nodes": nodes, "relations": rels, "weights": [float(att[e]) for e in edges],
                "weight": weight, "text": f"{text} (weight {weight:.3g})"}
