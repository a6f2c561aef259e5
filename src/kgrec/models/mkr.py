"""MKR: multi-task feature learning for knowledge-graph-enhanced recommendation.

Wang et al., WWW 2019 (``shared/papers/000_*``). The recommendation (RS) and KG embedding
(KGE) tasks share cross&compress units (Eq. 1-3) between each item and its aligned entity.

Readings taken where the paper leaves room:

* Pairing (Eq. 5, 7): ``S(v)`` is the single aligned entity of item ``v`` and ``S(h)`` the
  single aligned item of head ``h`` (Satori alignment is one-to-one). Items without an
  entity, and heads that are not items, pair with a learned "null" row.
* Low layers: ``L`` layers of user MLP, cross&compress unit and tail MLP as in Figure 1a;
  the relation goes through its own ``L``-layer MLP as Eq. 7 writes (``r_L = M^L(r)``;
  the authors' code skips it, ``relation_mlp=False`` reproduces that). ``M(x) = ReLU(Wx+b)``.
* KGE head (Eq. 7-8): ``t_hat = M^K([h_L; r_L])`` with ReLU hidden layers and a sigmoid
  output layer, ``score = sigmoid(t_L^T t_hat)`` where ``t_L`` is the tail after the tail MLP.
* Loss (Eq. 9): the RS step minimises the mean cross-entropy; the KGE step minimises
  ``-lambda_1 (mean score(true) - mean score(corrupted))`` with one uniformly corrupted tail
  per true triple (``kge_negatives=False`` drops the second term, as the authors' code does).
  Both add ``lambda_2/2 ||.||^2`` of the batch's latent vectors and of the task's weights.
* Algorithm 1 alternates ``t`` RS steps with one KGE step ("update parameters ... by
  gradient descent on Eq. (1)-(6), (9)", then on "(1)-(3), (7)-(9)"): we read it as two
  separate steps, each task with its own optimiser and learning rate (as the authors'
  code, two Adams), which the presets keep. Under separate Adams ``lambda_1`` acts only
  against the ``lambda_2`` term of the KGE step (Adam ignores a constant factor on a whole
  loss); ``train.joint: true`` optimises the one objective of Eq. 9, ``L_RS + lambda_1
  L_KG + lambda_2 L2``, per step, where ``lambda_1`` weighs the tasks. The authors' code
  runs a whole RS epoch, then a whole KGE epoch every ``t`` epochs (``train.kge_interval``).
* Variants (Section 3.2, Table 2), ``unit``: ``"cross_compress"`` (Eq. 1-3), ``"dcn"``
  (MKR-DCN, Eq. 13: ``v' = e_0 (v^T w^EV) + v + b^V``, ``e' = v_0 (e^T w^VE) + e + b^E``
  with ``v_0, e_0`` the embeddings entering the first unit) and ``"stitch"`` (MKR-stitch,
  Eq. 15 with the four transfer weights replaced by trainable scalars, ``v' = a_VV v +
  a_EV e + b^V``, ``e' = a_VE v + a_EE e + b^E``; the biases of Eq. 2 are kept and the
  scalars start at 0.9 on the diagonal and 0.1 off it, Misra et al.'s initialisation).
* Work per KGE step: the sampler draws corrupted tails only (none with
  ``kge_negatives=False``), and the true and corrupted tails go through the tail MLP in
  one call whose true-tail part also feeds the L2 term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model


class CrossCompress(nn.Module):
    """Cross&compress unit, Eq. 1-3.

    ``C = v e^T`` (Eq. 1) is never materialised: ``C w = v (e^T w)`` and
    ``C^T w = e (v^T w)``, so Eq. 2 costs ``O(d)`` per pair instead of ``O(d^2)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(4, dim))  # rows: w^VV, w^EV, w^VE, w^EE
        self.b_v = nn.Parameter(torch.zeros(dim))
        self.b_e = nn.Parameter(torch.zeros(dim))
        bound = (6.0 / (dim + 1)) ** 0.5  # Glorot-uniform of a (dim, 1) weight
        nn.init.uniform_(self.w, -bound, bound)

    def forward(self, v: Tensor, e: Tensor, v0: Tensor | None = None,
                e0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ew = e @ self.w.T  # (B, 4): e^T w for each weight vector
        vw = v @ self.w.T  # (B, 4): v^T w
        v_next = v * ew[:, 0:1] + e * vw[:, 1:2] + self.b_v  # C w^VV + C^T w^EV + b^V
        e_next = v * ew[:, 2:3] + e * vw[:, 3:4] + self.b_e  # C w^VE + C^T w^EE + b^E
        return v_next, e_next


class DCNUnit(nn.Module):
    """MKR-DCN's unit, Eq. 13: ``v' = e_0 v^T w^EV + v + b^V``, ``e' = v_0 e^T w^VE + e + b^E``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(2, dim))  # rows: w^EV, w^VE
        self.b_v = nn.Parameter(torch.zeros(dim))
        self.b_e = nn.Parameter(torch.zeros(dim))
        bound = (6.0 / (dim + 1)) ** 0.5
        nn.init.uniform_(self.w, -bound, bound)

    def forward(self, v: Tensor, e: Tensor, v0: Tensor, e0: Tensor) -> tuple[Tensor, Tensor]:
        v_next = e0 * (v @ self.w[0]).unsqueeze(-1) + v + self.b_v
        e_next = v0 * (e @ self.w[1]).unsqueeze(-1) + e + self.b_e
        return v_next, e_next


class StitchUnit(nn.Module):
    """MKR-stitch's unit: Eq. 15 with scalar transfer weights (a cross-stitch unit, Eq. 14)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # [[a_VV, a_EV], [a_VE, a_EE]]: row 0 makes v', row 1 makes e'
        self.alpha = nn.Parameter(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))
        self.b_v = nn.Parameter(torch.zeros(dim))
        self.b_e = nn.Parameter(torch.zeros(dim))

    def forward(self, v: Tensor, e: Tensor, v0: Tensor, e0: Tensor) -> tuple[Tensor, Tensor]:
        a = self.alpha
        return a[0, 0] * v + a[0, 1] * e + self.b_v, a[1, 0] * v + a[1, 1] * e + self.b_e


UNITS = {"cross_compress": CrossCompress, "dcn": DCNUnit, "stitch": StitchUnit}


def _dense(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _emb(n: int, dim: int, init: str) -> nn.Embedding:
    e = nn.Embedding(n, dim)
    if init == "xavier":  # tf.get_variable's default, as in the authors' code
        nn.init.xavier_uniform_(e.weight)
    elif init.startswith("normal:"):
        nn.init.normal_(e.weight, std=float(init.removeprefix("normal:")))
    else:
        raise ValueError(f"embedding_init must be 'xavier' or 'normal:STD', got {init!r}")
    return e


def _sq(*tensors: Tensor) -> Tensor:
    return sum(t.pow(2).sum() for t in tensors) / 2


@register_model("mkr", paper="Wang et al., WWW 2019 (MKR)")
class MKR(Model):
    """MKR (Eq. 1-9) with ``L`` low layers and ``H`` high layers.

    Args:
        dim: latent dimension ``d``.
        n_low_layers: ``L`` (Table 1).
        n_high_layers: ``H``/``K`` of the prediction MLPs (Section 4.3: 1).
        inner_product: ``f_RS`` is the inner product (Section 4.3) or an ``H``-layer MLP.
        kge_weight: ``lambda_1`` of Eq. 9.
        l2_weight: ``lambda_2`` of Eq. 9.
        kge_negatives: include the corrupted-triple term of Eq. 9.
        unit: the item-entity unit, ``"cross_compress"`` (MKR), ``"dcn"`` (MKR-DCN, Eq. 13)
            or ``"stitch"`` (MKR-stitch, Eq. 15 with scalars).
        relation_mlp: pass relations through ``M^L`` (Eq. 7).
        embedding_init: ``"normal:STD"`` (N(0, STD^2)) or ``"xavier"``. The paper gives
            none. Glorot over a table of thousands of rows (the authors' TF default) makes
            ``C^L(v, e)`` of order 1e-6 after two units, and Adam's updates of the item
            embeddings are then swamped by its epsilon (no learning, AUC 0.5 on Last.FM);
            N(0, 1) makes the degree-4 products of two units explode. N(0, 0.1^2) trains.
    """

    tasks = ("rec", "kge")
    task_samplers = {"rec": "ctr", "kge": "triples"}
    ctr_output = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_entities: int,
        n_relations: int,
        item_entity: Tensor | None = None,
        dim: int = 8,
        n_low_layers: int = 1,
        n_high_layers: int = 1,
        inner_product: bool = True,
        kge_weight: float = 0.1,
        l2_weight: float = 1e-6,
        kge_negatives: bool = True,
        relation_mlp: bool = True,
        embedding_init: str = "normal:0.1",
        unit: str = "cross_compress",
    ) -> None:
        super().__init__()
        if unit not in UNITS:
            raise ConfigError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        self.unit = unit
        self.n_users, self.n_items = n_users, n_items
        self.n_entities, self.n_relations = n_entities, n_relations
        self.dim, self.inner_product = dim, inner_product
        self.kge_weight, self.l2_weight = kge_weight, l2_weight
        self.kge_negatives = kge_negatives
        if item_entity is None:  # processed MKR layout: item i is entity i
            item_entity = torch.arange(n_items)
        item_entity = torch.as_tensor(item_entity, dtype=torch.long)
        pair_entity = torch.where(item_entity >= 0, item_entity, torch.tensor(n_entities))
        pair_item = torch.full((n_entities + 1,), n_items, dtype=torch.long)
        linked = item_entity >= 0
        pair_item[item_entity[linked]] = torch.arange(n_items)[linked]
        self.register_buffer("pair_entity", pair_entity, persistent=False)  # item -> entity
        self.register_buffer("pair_item", pair_item, persistent=False)  # entity -> item

        self.user_emb = _emb(n_users, dim, embedding_init)
        self.item_emb = _emb(n_items + 1, dim, embedding_init)  # last row: null item
        self.entity_emb = _emb(n_entities + 1, dim, embedding_init)  # last row: null entity
        self.relation_emb = _emb(n_relations, dim, embedding_init)
        self.user_mlp = nn.ModuleList(_dense(dim, dim) for _ in range(n_low_layers))
        self.tail_mlp = nn.ModuleList(_dense(dim, dim) for _ in range(n_low_layers))
        self.cc_units = nn.ModuleList(UNITS[unit](dim) for _ in range(n_low_layers))
        n_rel_layers = n_low_layers if relation_mlp else 0
        self.relation_mlp = nn.ModuleList(_dense(dim, dim) for _ in range(n_rel_layers))
        self.kge_hidden = nn.ModuleList(_dense(2 * dim, 2 * dim) for _ in range(n_high_layers - 1))
        self.kge_out = _dense(2 * dim, dim)
        if inner_product:
            self.rs_hidden = nn.ModuleList()
            self.rs_out = None
        else:
            self.rs_hidden = nn.ModuleList(_dense(2 * dim, 2 * dim) for _ in range(n_high_layers - 1))
            self.rs_out = _dense(2 * dim, 1)
        rs_modules = [self.user_mlp, self.cc_units, self.rs_hidden, *([self.rs_out] if self.rs_out else [])]
        kge_modules = [self.tail_mlp, self.cc_units, self.relation_mlp, self.kge_hidden, self.kge_out]
        # weights under each task's lambda_2 term (Eq. 9), fixed at construction
        self._l2_params = {
            "rec": [p for m in rs_modules for p in m.parameters()],
            "kge": [p for m in kge_modules for p in m.parameters()],
        }

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs) -> MKR:
        return cls(dataset.n_users, dataset.n_items, dataset.n_entities, dataset.n_relations,
                   item_entity=torch.from_numpy(dataset.item_entity), **kwargs)

    # ---- low layers -------------------------------------------------------------------
    def user_latent(self, users: Tensor) -> Tensor:
        """``u_L = M^L(u)``, Eq. 4."""
        u = self.user_emb(users)
        for layer in self.user_mlp:
            u = F.relu(layer(u))
        return u

    def cross(self, items: Tensor, entities: Tensor) -> tuple[Tensor, Tensor]:
        """``C^L(v, e)`` for paired items and entities (Eq. 3, 5, 7)."""
        v0, e0 = self.item_emb(items), self.entity_emb(entities)
        v, e = v0, e0
        for unit in self.cc_units:
            v, e = unit(v, e, v0, e0)
        return v, e

    def item_latent(self, items: Tensor) -> Tensor:
        """``v_L = C^L(v, e)[v]`` with ``e`` the aligned entity (Eq. 5)."""
        return self.cross(items, self.pair_entity[items])[0]

    def relation_latent(self, relations: Tensor) -> Tensor:
        r = self.relation_emb(relations)
        for layer in self.relation_mlp:
            r = F.relu(layer(r))
        return r

    def tail_latent(self, tails: Tensor) -> Tensor:
        t = self.entity_emb(tails)
        for layer in self.tail_mlp:
            t = F.relu(layer(t))
        return t

    # ---- high layers ------------------------------------------------------------------
    def _f_rs(self, u: Tensor, v: Tensor) -> Tensor:
        """``f_RS`` of Eq. 6 (logit; the probability is its sigmoid)."""
        if self.inner_product:
            return (u * v).sum(-1)
        x = torch.cat([u, v], dim=-1)
        for layer in self.rs_hidden:
            x = F.relu(layer(x))
        return self.rs_out(x).squeeze(-1)

    def predict_tail(self, heads: Tensor, relations: Tensor) -> tuple[Tensor, Tensor]:
        """``(h_L, t_hat)`` of Eq. 7 for a batch of ``(h, r)``."""
        h = self.cross(self.pair_item[heads], heads)[1]
        x = torch.cat([h, self.relation_latent(relations)], dim=-1)
        for layer in self.kge_hidden:
            x = F.relu(layer(x))
        return h, torch.sigmoid(self.kge_out(x))

    def kge_score(self, t_hat: Tensor, tails: Tensor) -> Tensor:
        """``f_KG(t, t_hat) = sigmoid(t^T t_hat)``, Eq. 8."""
        return torch.sigmoid((self.tail_latent(tails) * t_hat).sum(-1))

    def sampler_defaults(self, task: str) -> dict:
        """The KGE step uses corrupted tails only (none without ``kge_negatives``)."""
        return {"corrupt_sides": "tails" if self.kge_negatives else "none"} if task == "kge" else {}

    # ---- API --------------------------------------------------------------------------
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self._f_rs(self.user_latent(users), self.item_latent(items))

    def score_all(self, users: Tensor) -> Tensor:
        u = self.user_latent(users)
        v = self.item_latent(torch.arange(self.n_items, device=users.device))
        if self.inner_product:
            return u @ v.T
        b, n = len(u), len(v)
        return self._f_rs(u[:, None].expand(b, n, -1), v[None].expand(b, n, -1))

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task == "rec":
            u = self.user_latent(batch["users"])
            v = self.item_latent(batch["items"])
            loss = F.binary_cross_entropy_with_logits(self._f_rs(u, v), batch["labels"])
            rows = _sq(u, v) / batch.get("batch_share", 1.0)  # a sum over the global batch's rows
            return loss + self.l2_weight * (rows + _sq(*self._l2_params["rec"]))
        if task == "kge":
            h, t_hat = self.predict_tail(batch["heads"], batch["relations"])
            tails = batch["tails"]
            if self.kge_negatives:  # true and corrupted tails through the tail MLP at once
                tails = torch.cat([tails, batch["corrupt_tails"]])
            t_all = self.tail_latent(tails)
            scores = torch.sigmoid((t_all * t_hat.repeat(len(tails) // len(t_hat), 1)).sum(-1))
            n = len(t_hat)
            loss = -scores[:n].mean()
            if self.kge_negatives:
                loss = loss + scores[n:].mean()
            t = t_all[:n]
            rows = _sq(h, t) / batch.get("batch_share", 1.0)
            return self.kge_weight * loss + self.l2_weight * (rows + _sq(*self._l2_params["kge"]))
        raise ValueError(f"MKR has no task {task!r}")

    @torch.no_grad()
    def kge_rmse(self, triples: Tensor, batch_size: int = 65536) -> float:
        """RMSE between true and predicted tail vectors (Table 4), averaged over triples."""
        total = 0.0
        for s in range(0, len(triples), batch_size):
            b = triples[s : s + batch_size]
            _, t_hat = self.predict_tail(b[:, 0], b[:, 1])
            t = self.tail_latent(b[:, 2])
            total += torch.sqrt(((t - t_hat) ** 2).sum(-1) / self.dim).sum().item()
        return total / max(len(triples), 1)
