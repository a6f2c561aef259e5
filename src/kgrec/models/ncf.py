"""NCF (He et al., WWW 2017): neural collaborative filtering, GMF, MLP and NeuMF.

A baseline of HKRM (Table 2) and JNSKR (Table 2). The NCF paper is not in
``shared/papers``; equations cited from the WWW 2017 paper, defaults from the authors' code
(github.com/hexiangnan/neural_collaborative_filtering: ``num_factors 8``, ``layers
[64, 32, 16, 8]``, 4 negatives per positive, Adam lr 1e-3, batch 256).

* ``variant="gmf"`` (Eq. 9-10): ``phi = p_u * q_i``, ``y = sigmoid(h^T phi + b)``.
* ``variant="mlp"`` (Eq. 12): ``z_1 = [p_u; q_i]``, ``z_l = ReLU(W_l z_{l-1} + b_l)``,
  ``y = sigmoid(h^T z_L + b)``; ``layers[0]`` is the width of ``z_1`` (each embedding has
  ``layers[0] / 2`` dimensions) and ``layers[1:]`` the hidden widths, as in the code.
* ``variant="neumf"`` (Eq. 14): GMF and MLP with their own embeddings, ``y = sigmoid(h^T
  [phi^GMF; phi^MLP] + b)``. The paper's pre-training of NeuMF from trained GMF and MLP
  models (Section 3.4.1) is not done: NeuMF is trained from scratch, which the paper
  reports as its no-pre-training variant.

Loss: the log loss of Eq. 7 on labelled pairs, ``mean BCE``, plus ``l2`` times the mean
squared norm of the batch's embeddings (the code's ``reg_mf``/``reg_layers``, 0 by
default). Pairs come from the ``"ctr"`` sampler (the dataset's labelled rows, e.g. MKR's
CTR data) or from the ``"pointwise"`` sampler (each training positive with ``negatives``
uniformly drawn unobserved items labelled 0, Section 4.1; set
``train.sampler_options.rec.negatives``), chosen by ``sampler``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import PairSet, Sampler, register_sampler, sample_excluding
from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model


@register_sampler("pointwise")
class PointwiseSampler(Sampler):
    """Each training positive ``(u, i, 1)`` with ``negatives`` rows ``(u, j, 0)``, ``j``
    drawn uniformly among the user's unobserved items (NCF Section 4.1). A batch holds
    ``batch_size`` positives, so ``(1 + negatives) * batch_size`` labelled rows."""

    def __init__(self, data, batch_size, n_items: int, exclude: PairSet, negatives: int) -> None:
        super().__init__(data, batch_size)
        if negatives < 0:
            raise ConfigError(f"negatives must be >= 0, got {negatives}")
        self.n_items, self.exclude, self.negatives = n_items, exclude, int(negatives)

    @classmethod
    def from_data(cls, dataset: KGDataset, split: Split, batch_size: int, negatives: int = 4,
                  **_: Any) -> PointwiseSampler:
        pos = split.train[split.train[:, 2] == 1]
        data = {"users": torch.from_numpy(pos[:, 0]), "items": torch.from_numpy(pos[:, 1])}
        return cls(data, batch_size, dataset.n_items,
                   PairSet(pos[:, 0], pos[:, 1], dataset.n_items), negatives)

    def extra(self, batch, rng):
        users = batch["users"].repeat(self.negatives)
        neg = sample_excluding(rng, users.numpy(), self.n_items, self.exclude)
        labels = torch.cat([torch.ones(len(batch["users"])), torch.zeros(len(users))])
        return {"users": torch.cat([batch["users"], users]),
                "items": torch.cat([batch["items"], torch.from_numpy(neg)]), "labels": labels}


def chunked_score_all(score: Callable[[Tensor, Tensor], Tensor], users: Tensor, n_items: int,
                      pairs_per_chunk: int = 1 << 20) -> Tensor:
    """``(B, n_items)`` scores through a pairwise ``score``, a chunk of users at a time so
    that at most ``pairs_per_chunk`` pairs are scored at once."""
    step = max(1, pairs_per_chunk // max(n_items, 1))
    items = torch.arange(n_items, device=users.device)
    out = [score(users[s:s + step].repeat_interleave(n_items),
                 items.repeat(len(users[s:s + step]))).view(-1, n_items)
           for s in range(0, len(users), step)]
    return torch.cat(out) if out else torch.zeros((0, n_items), device=users.device)


def mlp(widths: list[int], dropout: float = 0.0) -> nn.Sequential:
    """``ReLU(W x + b)`` layers ``widths[0] -> widths[1] -> ...`` (Xavier weights)."""
    mods: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight)
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
    return nn.Sequential(*mods)


class PointwiseModel(Model):
    """Shared by NCF, NFM and Wide&Deep: a logit per pair, BCE on labelled pairs from the
    ``ctr`` or ``pointwise`` sampler (``sampler``)."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    ctr_output: ClassVar[bool] = True

    def _set_sampler(self, sampler: str) -> None:
        if sampler not in ("ctr", "pointwise"):
            raise ConfigError(f"sampler must be 'ctr' or 'pointwise', got {sampler!r}")
        self.task_samplers = {"rec": sampler}  # instance attribute: this model's choice

    def logits(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """``(logit, squared norm of the pair's embeddings)`` per pair."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"{self.name} has no task {task!r}")
        logit, sq = self.logits(batch["users"], batch["items"])
        loss = F.binary_cross_entropy_with_logits(logit, batch["labels"].to(logit.dtype))
        return loss + self.l2 * sq.mean() if self.l2 > 0 else loss

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        return self.logits(users, items)[0]

    def score_all(self, users: Tensor) -> Tensor:
        return chunked_score_all(self.score, users, self.n_items)


@register_model("ncf", paper="He et al., WWW 2017 (NCF: GMF, MLP, NeuMF)")
class NCF(PointwiseModel):
    """GMF, MLP or NeuMF (``variant``), trained with the log loss (Eq. 7)."""

    def __init__(self, n_users: int, n_items: int,
                 variant: Literal["gmf", "mlp", "neumf"] = "neumf", dim: int = 8,
                 layers: list[int] | tuple[int, ...] = (64, 32, 16, 8), l2: float = 0.0,
                 init_std: float = 0.01, sampler: Literal["ctr", "pointwise"] = "ctr",
                 n_entities: int = 0, n_relations: int = 0) -> None:
        super().__init__()
        layers = [int(x) for x in layers]
        if variant not in ("gmf", "mlp", "neumf"):
            raise ConfigError(f"variant must be gmf, mlp or neumf, got {variant!r}")
        if dim <= 0 or not layers or min(layers) <= 0 or layers[0] % 2:
            raise ConfigError("dim and layers must be positive, layers[0] even")
        if float(l2) < 0:
            raise ConfigError("l2 must be non-negative")
        self._set_sampler(sampler)
        self.n_users, self.n_items, self.variant = n_users, n_items, variant
        self.l2 = float(l2)
        out = 0
        if variant in ("gmf", "neumf"):
            self.gmf_user = nn.Embedding(n_users, dim)
            self.gmf_item = nn.Embedding(n_items, dim)
            out += dim
        if variant in ("mlp", "neumf"):
            self.mlp_user = nn.Embedding(n_users, layers[0] // 2)
            self.mlp_item = nn.Embedding(n_items, layers[0] // 2)
            self.tower = mlp(layers)
            out += layers[-1]
        for emb in self.modules():
            if isinstance(emb, nn.Embedding):  # N(0, 0.01^2) as the authors' code
                nn.init.normal_(emb.weight, std=init_std)
        self.predict = nn.Linear(out, 1)
        nn.init.xavier_uniform_(self.predict.weight)
        nn.init.zeros_(self.predict.bias)

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> NCF:
        return cls(n_users=dataset.n_users, n_items=dataset.n_items, **kwargs)

    def logits(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        parts, sq = [], 0.0
        if self.variant in ("gmf", "neumf"):
            p, q = self.gmf_user(users), self.gmf_item(items)
            parts.append(p * q)  # Eq. 9
            sq = sq + p.square().sum(-1) + q.square().sum(-1)
        if self.variant in ("mlp", "neumf"):
            p, q = self.mlp_user(users), self.mlp_item(items)
            parts.append(self.tower(torch.cat([p, q], -1)))  # Eq. 12
            sq = sq + p.square().sum(-1) + q.square().sum(-1)
        return self.predict(torch.cat(parts, -1)).squeeze(-1), sq  # Eq. 10 / 12 / 14

