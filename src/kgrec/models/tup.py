"""TUP: translation-based user preference model (KTUP paper, Section 4).

For a pair ``(u, i)`` a preference is induced from a set ``P`` of latent preferences, each
with a translation vector ``p`` and a hyperplane normal ``w_p``; the pair's distance is the
hyperplane translation ``g(u, i; p) = ||u_perp + p - i_perp||_1`` (Eq. 11-13, with
``x_perp = x - (w_p^T x) w_p``) and training minimises the BPR loss of Eq. 15,
``-log sigmoid(g(u, i'; p') - g(u, i; p))`` averaged over the batch.

Readings taken (the extracted formulas are partly garbled):

* Similarity (Eq. 8): ``phi(u, i, p) = (u + i)^T p``, used directly as the logits
  ``log(pi_p)`` of Eq. 5 (as the authors' code does).
* Hard induction (Eq. 5-7): Straight-Through Gumbel-softmax with Gumbel noise
  ``-log(-log U)``, ``U ~ Uniform(0, 1)`` (the paper's "N(0, 1)" cannot feed a log), and
  temperature ``tau``. The forward value is the exact one-hot ``z``; the gradient is that of
  the Gumbel-softmax ``y``. Noise is drawn only in training mode; ``score``/``score_all``
  and ``explain`` use the deterministic ``argmax`` of the logits.
* Soft induction (Eq. 9-10, 14): ``alpha = softmax(phi)`` over preferences ("proportional to
  the similarity"; the authors' code uses the raw, unnormalised dot products), then
  ``p = sum alpha p'`` and ``w_p = sum alpha w_p'``.
* The induced normal is L2-normalised before projecting (TransH's ``||w|| = 1``).
* ``mixing="authors"`` (not the paper's equations; for comparison with the authors' code,
  ``jTransUP/models/transUP.py`` ``getPreferences``): logits ``(u + i)^T p / 2``, soft
  weights the raw logits (no softmax), ``p = sum phi_k p_k`` and ``w = sum phi_k w_k``
  and the projection ``x - (w^T x) w`` with the unnormalised ``w`` (``misc.py``
  ``projection_transH_pytorch``); hard induction as above on those logits. The default
  ``"paper"`` is Eq. 8-14 as read above.
* Regularisation: ``soft_constraint`` times the mean TransH orthogonality
  ``(w_p^T p)^2 / ||p||^2`` over all preferences (the authors' ``orthogonalLoss``),
  ``l2`` times the mean squared norm of the batch's user/item vectors (the paper's L2
  coefficient; the authors apply it as optimiser weight decay instead) and
  ``norm_constraint`` times the authors' ``normLoss`` of TUP (``item_recommendation.py``;
  not in the paper): ``sum [||x||^2 - 1]_+`` over the batch's user rows, its positive and
  negative item rows and every preference vector, a sum (not a mean) next to the BPR mean,
  so in effect a unit-ball constraint (weight 1 in their code; 0 = off). KTUP's rec step
  has no such term in their code (its entities are constrained by TransH's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from kgrec.errors import ConfigError
from kgrec.models.base import Model, register_model
from kgrec.models.transe import init_embedding, lp_norm
from kgrec.models.transh import orthogonality_penalty, transh_project


def st_gumbel_softmax(logits: Tensor, tau: float = 1.0, noise: bool = True) -> Tensor:
    """Straight-Through Gumbel-softmax over the last dimension (Eq. 6-7).

    Forward: the exact one-hot of ``argmax(logits + g)``; backward: the gradient of
    ``y = softmax((logits + g) / tau)``. ``noise=False`` drops ``g`` (deterministic).
    """
    if noise:
        u = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
        logits = logits - torch.log(-torch.log(u))
    y = F.softmax(logits / tau, dim=-1)
    hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return hard + (y - y.detach())  # exactly ``hard`` in the forward pass


def translation_distances(users: Tensor, items: Tensor, prefs: Tensor, normals: Tensor,
                          hard: bool, norm: int, chunk_elems: int = 1 << 18,
                          raw_scale: float | None = None) -> Tensor:
    """``g(u, i; p)`` of every row of ``users (U, d)`` with every row of ``items (I, d)``,
    shape ``(U, I)``, with deterministic induction (soft attention, or the argmax
    preference when ``hard``): the full-ranking form of
    :meth:`PreferenceTranslation.pair_distance`, equal to it up to float rounding.

    Only the part that needs a ``d``-vector per pair is done per pair. With ``a`` the
    pair's attention over the ``K`` preferences, ``x = u - i`` and ``w = sum_k a_k w_k``
    the unnormalised induced normal:

    * ``phi = u^T p_k + i^T p_k`` (Eq. 8): ``U x K`` and ``I x K`` products, once;
    * the projection of Eq. 12-13 with unit ``w / ||w||`` is ``x - c w`` with
      ``c = x^T w / ||w||^2``, where ``x^T w = sum_k a_k (w_k^T u - w_k^T i)`` and
      ``||w||^2 = a^T (W W^T) a``: ``K``-dim work per pair;
    * ``u_perp + p - i_perp = x + [a, -c a] [P; W]``: one matrix product per chunk of
      users, accumulated into ``x``, then its L1 (or L2) norm.

    ``raw_scale`` (the authors' mixing): soft weights ``a = raw_scale * phi`` instead of the
    softmax and the projection with the unnormalised ``w``, so ``c = x^T w``.

    Users go in chunks whose ``(chunk, I, max(d, 2K))`` tensors stay below
    ``chunk_elems`` elements (default ``2**18``, about 1 MB: one user at a time on Last.FM,
    whose pair tensors then stay in the CPU's cache; faster than ``2**22`` here).
    """
    n, d = items.shape
    k = prefs.shape[0]
    u_logit, i_logit = users @ prefs.T, items @ prefs.T
    u_norm, i_norm = users @ normals.T, items @ normals.T
    gram = normals @ normals.T if raw_scale is None else None
    basis = torch.cat([prefs, normals])  # (2K, d)
    step = max(1, chunk_elems // max(n * max(d, 2 * k), 1))
    out = []
    for s in range(0, len(users), step):
        logits = u_logit[s:s + step, None, :] + i_logit[None]  # (c, I, K)
        if hard:
            a = F.one_hot(logits.argmax(-1), k).to(logits.dtype)
        else:
            a = logits.softmax(-1) if raw_scale is None else logits * raw_scale
        xw = (a * (u_norm[s:s + step, None, :] - i_norm[None])).sum(-1)
        if raw_scale is None:
            ww = ((a @ gram) * a).sum(-1)
            coef = xw / ww.clamp_min(1e-24)  # F.normalize's eps 1e-12 on ||w||, squared
        else:
            coef = xw  # the authors' projection: w as mixed, not normalised
        mix = torch.cat([a, a * -coef[..., None]], -1)  # (c, I, 2K)
        x = users[s:s + step, None, :] - items[None]  # (c, I, d)
        x = torch.baddbmm(x, mix, basis.expand(len(x), -1, -1))
        out.append(x.abs_().sum(-1) if norm == 1 else torch.linalg.vector_norm(x, dim=-1))
    return torch.cat(out) if out else users.new_zeros(0, n)


class PreferenceTranslation:
    """Preference induction and hyperplane translation shared by TUP and KTUP.

    Hooks: :meth:`item_vectors` (items as used by the translation), :meth:`all_items`
    and :meth:`preference_tables` (translation vectors and normals of every preference).
    Needs attributes ``user_emb``, ``induction``, ``tau``, ``norm``, ``n_items``.
    """

    induction: str
    tau: float
    norm: int
    chunk_elems: int
    norm_constraint: float = 0.0
    mixing: str = "paper"
    #: the authors' logit factor: ``(u + i)^T p / 2`` (KTUP halves its tables instead)
    authors_logit_scale: ClassVar[float] = 0.5

    def logit_scale(self) -> float | None:
        """``None`` for the paper's mixing, else the factor on the authors' raw logits."""
        return self.authors_logit_scale if self.mixing == "authors" else None

    def item_vectors(self, items: Tensor) -> Tensor:
        return self.item_emb(items)

    def all_items(self) -> Tensor:
        return self.item_emb.weight

    def preference_tables(self) -> tuple[Tensor, Tensor]:
        return self.pref_emb.weight, self.pref_norm_emb.weight

    # --- Eq. 5-10, 14 -------------------------------------------------------------------
    @staticmethod
    def similarity(u: Tensor, i: Tensor, prefs: Tensor) -> Tensor:
        """``phi(u, i, p) = (u + i)^T p`` for every preference, shape ``(..., P)`` (Eq. 8).

        Computed as ``u^T p + i^T p`` so that broadcast user/item rows cost ``O(P d)`` per
        user and per item instead of per pair.
        """
        return u @ prefs.T + i @ prefs.T

    def attention(self, logits: Tensor, stochastic: bool) -> Tensor:
        """Preference weights: ST Gumbel one-hot (hard) or softmax attention (soft; the raw
        scaled logits under the authors' mixing)."""
        scale = self.logit_scale()
        if scale is not None:
            logits = logits * scale
        if self.induction == "hard":
            return st_gumbel_softmax(logits, self.tau, noise=stochastic)
        return F.softmax(logits, dim=-1) if scale is None else logits

    def pair_distance(self, u: Tensor, i: Tensor, stochastic: bool = False) -> Tensor:
        """``g(u, i; p)`` (Eq. 11-14) of aligned rows ``u, i (..., d)``, shape ``(...)``."""
        prefs, normals = self.preference_tables()
        logits = self.similarity(u, i, prefs)
        if self.induction == "hard" and not stochastic:
            k = logits.argmax(-1)  # deterministic hard induction: pick, don't mix
            p, w = prefs[k], normals[k]
        else:
            a = self.attention(logits, stochastic)
            p, w = (a @ torch.cat([prefs, normals], 1)).split(prefs.shape[1], -1)
        # u_perp - i_perp: the projection is linear; the authors' mixing keeps w unnormalised
        diff = transh_project(u - i, w, normalize=self.mixing != "authors") + p
        return lp_norm(diff, self.norm)

    def rec_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """BPR loss of Eq. 15 plus the soft constraint and L2 terms."""
        u = self.user_emb(batch["users"])
        # both item sides in one lookup per table and one pair_distance call (each lookup
        # costs a dense zero gradient of the table in backward; see kg_loss of transe.py)
        iv = self.item_vectors(torch.cat([batch["pos_items"], batch["neg_items"]]))
        g_pos, g_neg = self.pair_distance(u.repeat(2, 1), iv, self.training).split(len(u))
        ip, ineg = iv.split(len(u))
        loss = -F.logsigmoid(g_neg - g_pos).mean()
        if self.soft_constraint > 0:
            loss = loss + self.soft_constraint * orthogonality_penalty(*self.preference_tables())
        if self.l2 > 0:
            sq = u.pow(2).sum(-1) + ip.pow(2).sum(-1) + ineg.pow(2).sum(-1)
            loss = loss + self.l2 * sq.mean()
        if self.norm_constraint > 0:  # the authors' normLoss: summed over the batch's rows
            def over(x: Tensor) -> Tensor:
                return F.relu(x.pow(2).sum(-1) - 1.0).sum()
            rows = (over(u) + over(iv)) / batch.get("batch_share", 1.0)
            loss = loss + self.norm_constraint * (rows + over(self.preference_tables()[0]))
        return loss

    # --- scoring ------------------------------------------------------------------------
    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """``-g(u, i; p)`` with deterministic induction, shape ``(B,)``."""
        return -self.pair_distance(self.user_emb(users), self.item_vectors(items))

    def score_all(self, users: Tensor) -> Tensor:
        """``-g`` of every item for each user, ``(B, n_items)``: :func:`translation_distances`
        (chunks of users below ``chunk_elems`` elements)."""
        prefs, normals = self.preference_tables()
        return -translation_distances(self.user_emb(users), self.all_items(), prefs, normals,
                                      self.induction == "hard", self.norm, self.chunk_elems,
                                      self.logit_scale())

    @torch.no_grad()
    def preference_weights(self, user: int, items: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """``(weights (n, P), chosen (n,))``: attention distribution and induced preference.

        For hard induction the weights are the noise-free Gumbel-softmax ``softmax(phi/tau)``
        and the chosen preference is its argmax (the one used for scoring).
        """
        dev = self.user_emb.weight.device
        items = torch.as_tensor(items, dtype=torch.long, device=dev).reshape(-1)
        u = self.user_emb(torch.full_like(items, int(user)))
        logits = self.similarity(u, self.item_vectors(items), self.preference_tables()[0])
        tau = self.tau if self.induction == "hard" else 1.0
        weights = F.softmax(logits / tau, dim=-1)
        return weights, logits.argmax(-1)

    def explain(self, user: int, items: Sequence[int] | Tensor) -> list[dict[str, Any]]:
        """Per item: ``{"item", "preference", "weight", "weights"}`` (Section 6.7)."""
        weights, chosen = self.preference_weights(user, items)
        items = torch.as_tensor(items).reshape(-1).tolist()
        rows = zip(items, chosen.tolist(), weights, strict=True)
        return [{"item": int(i), "preference": int(k), "weight": float(w[k]),
                 "weights": w.tolist()} for i, k, w in rows]


def _check_induction(induction: str, tau: float, norm: int, mixing: str = "paper") -> None:
    if mixing not in ("paper", "authors"):
        raise ConfigError(f"mixing must be 'paper' or 'authors', got {mixing!r}")
    if induction not in ("hard", "soft"):
        raise ConfigError(f"induction must be 'hard' or 'soft', got {induction!r}")
    if tau <= 0:
        raise ConfigError(f"tau must be positive, got {tau}")
    if norm not in (1, 2):
        raise ConfigError(f"norm must be 1 or 2, got {norm}")


@register_model("tup", paper="Cao et al., WWW 2019 (TUP)")
class TUP(PreferenceTranslation, Model):
    """TUP with ``n_preferences`` latent preferences and hard or soft induction."""

    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "bpr"}

    def __init__(self, n_users: int, n_items: int, n_preferences: int = 20, dim: int = 100,
                 induction: Literal["hard", "soft"] = "soft", norm: int = 1, tau: float = 1.0,
                 soft_constraint: float = 1.0, l2: float = 0.0, norm_constraint: float = 0.0,
                 mixing: Literal["paper", "authors"] = "paper", chunk_elems: int = 1 << 18,
                 n_entities: int = 0, n_relations: int = 0) -> None:
        super().__init__()
        _check_induction(induction, tau, norm, mixing)
        self.mixing = mixing
        if n_preferences <= 0 or dim <= 0:
            raise ConfigError("n_preferences and dim must be positive")
        self.n_users, self.n_items = n_users, n_items
        self.n_preferences, self.dim = n_preferences, dim
        self.induction, self.norm, self.tau = induction, norm, float(tau)
        self.soft_constraint, self.l2 = float(soft_constraint), float(l2)
        if norm_constraint < 0:
            raise ConfigError(f"norm_constraint must be >= 0, got {norm_constraint}")
        self.norm_constraint = float(norm_constraint)
        self.chunk_elems = int(chunk_elems)
        self.user_emb = init_embedding(n_users, dim)
        self.item_emb = init_embedding(n_items, dim)
        self.pref_emb = init_embedding(n_preferences, dim)
        self.pref_norm_emb = init_embedding(n_preferences, dim)

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:
        if task != "rec":
            raise ValueError(f"tup has no task {task!r}")
        return self.rec_loss(batch)
