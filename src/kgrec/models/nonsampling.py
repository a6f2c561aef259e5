"""Efficient whole-data (non-sampling) losses shared by ENMF and JNSKR.

ENMF (Chen et al., TOIS 2020) learns matrix factorisation ``y(a, b) = h^T (x_a * z_b)``
from *every* pair with the weighted squared loss ``sum c_ab (r_ab - y_ab)^2`` (``r = 1`` on
the observed pairs, 0 elsewhere). With the negative weight factorised as
``c-_ab = w_a w'_b`` and positive weight ``c+``, the loss over a batch ``B`` of rows ``a``
against every column ``b`` is, up to a parameter-free constant (ENMF Eq. 13-16, JNSKR
Eq. 9)::

    L = sum_{(a, b) observed, a in B} ((c+ - c-_ab) y_ab^2 - 2 c+ y_ab)
      + sum_{i,j} (h_i h_j) (sum_{a in B} w_a x_ai x_aj) (sum_{b} w'_b z_bi z_bj)

so that no ``|B| x |columns|`` matrix is built: the all-pairs part costs ``O((|B| + n) d^2)``.
JNSKR's CF part batches items (rows: items with ``c-_v``, columns: every user), ENMF-U
batches users (rows: users, columns: every item with ``c-_v``); both call
:func:`cf_whole_data_loss`. JNSKR's DistMult KG part has the same structure with the
relation Gram matrix in place of ``h h^T`` (:func:`gram_sum`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from kgrec.errors import ConfigError


class _Gram(torch.autograd.Function):
    """``x^T x`` with the one-matmul backward ``x (g + g^T)`` (autograd would use two)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.T @ x

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return x @ (g + g.T)


def gram(x: Tensor, weight: Tensor | None = None) -> Tensor:
    """``sum_a w_a x_a x_a^T``, the ``d x d`` (weighted) Gram matrix of the rows of ``x``."""
    if weight is None:
        return _Gram.apply(x)
    return (x * weight.unsqueeze(1)).T @ x


def pointwise_part(y: Tensor, c_neg: Tensor | float, c_pos: float = 1.0) -> Tensor:
    """``sum ((c+ - c-) y^2 - 2 c+ y)`` over the observed pairs' predictions ``y``: their
    own loss ``c+ (1 - y)^2`` minus the ``c- y^2`` the all-pairs term counted for them,
    without the constant ``c+``."""
    return ((c_pos - c_neg) * y.square() - 2.0 * c_pos * y).sum()


def gram_sum(*grams: Tensor) -> Tensor:
    """``sum_{i,j} prod_k G_k[i, j]``: the all-pairs squared-prediction term."""
    out = grams[0]
    for g in grams[1:]:
        out = out * g
    return out.sum()


def cf_whole_data_loss(every: Tensor, h: Tensor, batch: Tensor, batch_neg: Tensor | None,
                       pos_index: Tensor, pos_every: Tensor, c_pos: float = 1.0,
                       every_neg: Tensor | None = None,
                       pos_every_neg: Tensor | None = None) -> Tensor:
    """The whole-data CF loss of a batch of rows against every column (module docstring).

    Args:
        every: ``(n, d)`` every column's vector (JNSKR: every user ``p_u``; ENMF-U: every
            item ``q_v``).
        h: ``(d,)`` prediction vector.
        batch: ``(B, d)`` the batch rows' vectors (JNSKR: items ``q_v``; ENMF-U: users).
        batch_neg: ``(B,)`` row factor ``w_a`` of the negative weight (``None``: 1).
        pos_index: ``(P,)`` observed pairs: the row's position in ``batch``.
        pos_every: ``(P, d)`` observed pairs: the column's vector.
        c_pos: positive weight ``c+``.
        every_neg: ``(n,)`` column factor ``w'_b`` of the negative weight (``None``: 1).
        pos_every_neg: ``(P,)`` ``w'_b`` of each observed pair's column (with ``every_neg``).
    """
    y = (pos_every * batch[pos_index]) @ h
    c_neg: Tensor | float = 1.0
    if batch_neg is not None:
        c_neg = batch_neg[pos_index]
    if every_neg is not None:
        if pos_every_neg is None:
            raise ValueError("every_neg needs pos_every_neg")
        c_neg = c_neg * pos_every_neg
    return pointwise_part(y, c_neg, c_pos) + gram_sum(torch.outer(h, h), gram(every, every_neg),
                                                      gram(batch, batch_neg))


def negative_weights(counts: np.ndarray, total: float, weighting: str, exponent: float,
                     support: np.ndarray | None = None) -> np.ndarray:
    """Per-row negative weights summing to ``total``.

    ``popularity``: ``total * counts^p / sum counts^p`` (rows with no count get 0; ENMF
    Section 3.4 and JNSKR's ``caculate_weight``); ``uniform``: ``total / n`` over
    ``support`` (all rows when ``None``).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if weighting == "popularity":
        powered = np.where(counts > 0, counts, 0.0) ** exponent
        s = powered.sum()
        return total * powered / s if s > 0 else np.zeros_like(counts)
    if weighting == "uniform":
        mask = np.ones(len(counts), bool) if support is None else np.asarray(support, bool)
        n = max(int(mask.sum()), 1)
        return np.where(mask, total / n, 0.0)
    raise ConfigError(f"weighting must be 'popularity' or 'uniform', got {weighting!r}")
