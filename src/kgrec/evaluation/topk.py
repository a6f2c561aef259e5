"""Top-K recommendation: full ranking over all items, precision/recall/F1/hit/NDCG@K.

The protocol (KTUP Sec. 6.4, KGAT Sec. 4.1.2): for every user with at least one relevant
item, rank all items except the user's known positives and compare the top K with the
held-out positives. Metrics are computed per user, then averaged over those users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from kgrec import parallel as distr
from kgrec.data.dataset import Split
from kgrec.evaluation.ctr import inference

if TYPE_CHECKING:
    import scipy.sparse as sp  # imported on use: scipy.sparse costs `kgrec serve` 0.1-0.3 s at start

NDCG_VARIANTS = ("standard", "legacy", "ktup")


def positives_csr(rows: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """``(n_users, n_items)`` 0/1 matrix of the ``label == 1`` rows ``(user, item, label)``."""
    import scipy.sparse as sp

    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    pos = rows[rows[:, 2] == 1]
    mat = sp.csr_matrix(
        (np.ones(len(pos), dtype=np.int8), (pos[:, 0], pos[:, 1])), shape=(n_users, n_items)
    )
    mat.sum_duplicates()
    mat.data[:] = 1
    return mat


def _as_csr(relevant: Sequence[np.ndarray] | sp.spmatrix, n_rows: int) -> tuple[np.ndarray, ...]:
    """``(indptr, indices)`` of the relevant sets, duplicates removed."""
    import scipy.sparse as sp

    if sp.issparse(relevant):
        mat = sp.csr_matrix(relevant)
    else:
        lengths = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=len(relevant))
        items = (
            np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in relevant])
            if len(relevant)
            else np.zeros(0, dtype=np.int64)
        )
        n_cols = int(items.max()) + 1 if len(items) else 1
        if len(items) and items.min() < 0:
            raise ValueError("relevant item ids must be non-negative")
        row_of = np.repeat(np.arange(len(relevant)), lengths)
        mat = sp.csr_matrix(
            (np.ones(len(items), dtype=np.int8), (row_of, items)), shape=(len(relevant), n_cols)
        )
    if mat.shape[0] != n_rows:
        raise ValueError(f"{mat.shape[0]} relevant sets for {n_rows} ranked rows")
    mat.sum_duplicates()
    mat.eliminate_zeros()
    return mat.indptr.astype(np.int64), mat.indices.astype(np.int64)


def hit_matrix(ranked: np.ndarray, relevant: Sequence[np.ndarray] | sp.spmatrix) -> np.ndarray:
    """Bool ``(U, Kmax)``: ``ranked[u, j]`` is one of row ``u``'s relevant items.

    Negative entries of ``ranked`` (padding) never hit.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    return _hits(ranked, *_as_csr(relevant, len(ranked)))


def _hits(ranked: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    n_cols = max(int(indices.max()) + 1 if len(indices) else 1, int(ranked.max(initial=0)) + 1)
    rows = np.repeat(np.arange(len(ranked), dtype=np.int64), np.diff(indptr))
    rel_keys = rows * n_cols + indices  # sorted: CSR rows ascending, columns sorted
    rank_keys = np.arange(len(ranked), dtype=np.int64)[:, None] * n_cols + ranked
    pos = np.searchsorted(rel_keys, rank_keys).clip(max=max(len(rel_keys) - 1, 0))
    hits = rel_keys[pos] == rank_keys if len(rel_keys) else np.zeros(ranked.shape, bool)
    return hits & (ranked >= 0)


def topk_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.spmatrix,
    ks: Sequence[int],
    ndcg: Literal["standard", "legacy", "ktup"] = "standard",
    ndcg_authors: Literal["standard", "legacy", "ktup"] | None = None,
) -> dict[str, float]:
    """Precision, recall, F1, hit ratio and NDCG at each K, averaged over users.

    Args:
        ranked: ``(U, Kmax)`` item ids in rank order (``-1`` pads a short list).
        relevant: per row of ``ranked``, the relevant item ids (a list of arrays or a CSR
            matrix with one row per ranked row). Rows with no relevant item are skipped.
        ks: cut-offs, each ``<= Kmax``.
        ndcg: NDCG variant, with ``r`` the binary hit vector in rank order:

            * ``"standard"``: ``DCG@K = sum_{j<K} r_j / log2(j+2)`` over the ideal DCG of
              ``min(|rel|, K)`` hits at the top.
            * ``"legacy"``: KGAT's ``metrics.ndcg_at_k(r, K)`` as called by its
              ``batch_test.py``: the same DCG over ``dcg_at_k(sorted(r, reverse=True), K)``,
              where ``r`` is the hit vector of the top ``max(ks)`` (not of ``|rel|``), so the
              ideal has ``min(hits in top max(ks), K)`` hits; a user with no hit scores 0.
            * ``"ktup"``: KTUP's ``jTransUP/utils/evaluation.py``: ``ndcg_at_k`` with its
              default ``method=0`` discount ``[1, 1, 1/log2(3), 1/log2(4), ...]`` and the ideal
              taken from the hit vector of the top K itself (``min(hits in top K, K)``).
        ndcg_authors: a second NDCG variant reported beside ``ndcg@K`` as
            ``ndcg_authors@K`` (e.g. ``"legacy"``, the KGAT/JNSKR papers' NDCG, next to the
            standard one); ``None`` adds nothing.

    Precision@K is ``hits/K``, recall@K is ``hits/|rel|``, F1@K is ``2PR/(P+R)`` per user
    (0 when both are 0) and then averaged, hit@K is 1 when any of the top K is relevant.
    With no user having a relevant item every value is ``nan``.
    """
    if ndcg not in NDCG_VARIANTS or (ndcg_authors is not None
                                     and ndcg_authors not in NDCG_VARIANTS):
        raise ValueError(f"ndcg must be one of {NDCG_VARIANTS}, got {ndcg!r}, {ndcg_authors!r}")
    variants = {"ndcg": ndcg} | ({} if ndcg_authors is None else {"ndcg_authors": ndcg_authors})
    ks = [int(k) for k in ks]
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2:
        raise ValueError("ranked must be a (U, Kmax) array")
    if not ks or min(ks) < 1 or max(ks) > ranked.shape[1]:
        raise ValueError(f"ks {ks} must lie in [1, {ranked.shape[1]}]")
    indptr, indices = _as_csr(relevant, len(ranked))
    n_rel = np.diff(indptr)
    keep = n_rel > 0
    hits = _hits(ranked, indptr, indices)[keep, : max(ks)].astype(np.float64)
    n_rel = n_rel[keep].astype(np.float64)
    out: dict[str, float] = {}
    if len(hits) == 0:
        for k in ks:
            for name in ("precision", "recall", "f1", "hit", *variants):
                out[f"{name}@{k}"] = math.nan
        return out

    positions = np.arange(max(ks))
    disc = 1.0 / np.log2(positions + 2)  # method 1: 1, 1/log2(3), ...
    disc0 = np.where(positions == 0, 1.0, 1.0 / np.log2(np.maximum(positions, 1) + 1))
    ideal = np.concatenate([[0.0], np.cumsum(disc)])  # ideal[n] = DCG of n hits on top
    ideal0 = np.concatenate([[0.0], np.cumsum(disc0)])
    cum_hits = np.cumsum(hits, axis=1)
    hits_kmax = cum_hits[:, -1].astype(np.int64)
    for k in ks:
        n_hit = cum_hits[:, k - 1]
        prec = n_hit / k
        rec = n_hit / n_rel
        denom = prec + rec
        f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
        out[f"precision@{k}"] = float(prec.mean())
        out[f"recall@{k}"] = float(rec.mean())
        out[f"f1@{k}"] = float(f1.mean())
        out[f"hit@{k}"] = float((n_hit > 0).mean())
        for name, variant in variants.items():
            if variant == "ktup":
                dcg = hits[:, :k] @ disc0[:k]
                idcg = ideal0[np.minimum(n_hit.astype(np.int64), k)]
            else:
                dcg = hits[:, :k] @ disc[:k]
                n_ideal = np.minimum(n_rel if variant == "standard" else hits_kmax, k)
                idcg = ideal[n_ideal.astype(np.int64)]
            nd = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
            out[f"{name}@{k}"] = float(nd.mean())
    return out


def rank_topk(
    model: nn.Module,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    k_max: int,
    batch_users: int = 1024,
) -> np.ndarray:
    """Top ``k_max`` items of each user by ``model.score_all``, excluded items left out.

    Users are scored ``batch_users`` at a time (memory ``batch_users x n_items``), in eval
    mode without gradients. Excluded entries (nonzeros of ``exclude[user]``) get ``-inf``
    before ``torch.topk``; ties are broken in ``torch.topk``'s order (implementation
    defined, not by item id). Slots beyond the user's non-excluded items are ``-1``.

    Returns:
        ``int64 (len(users), k_max)`` item ids in rank order.
    """
    import scipy.sparse as sp

    users = np.asarray(users, dtype=np.int64).ravel()
    exclude = sp.csr_matrix(exclude)
    if k_max < 1 or batch_users < 1:
        raise ValueError("k_max and batch_users must be positive")
    out = np.full((len(users), k_max), -1, dtype=np.int64)
    with inference(model) as device:
        for start in range(0, len(users), batch_users):
            chunk = users[start : start + batch_users]
            scores = model.score_all(torch.as_tensor(chunk, device=device))
            expected = (len(chunk), exclude.shape[1])
            if tuple(scores.shape) != expected:
                raise ValueError(f"score_all gave {tuple(scores.shape)}, expected {expected}")
            sub = exclude[chunk].tocoo()
            if sub.nnz:
                idx = (
                    torch.as_tensor(sub.row, dtype=torch.long, device=device),
                    torch.as_tensor(sub.col, dtype=torch.long, device=device),
                )
                # out of place: score_all may return a view of a parameter or buffer
                scores = scores.index_put(idx, scores.new_full((), -math.inf))
            k = min(k_max, scores.shape[1])
            values, items = torch.topk(scores, k, dim=1)
            items = items.masked_fill(values == -math.inf, -1)
            out[start : start + len(chunk), :k] = items.cpu().numpy()
    return out


def evaluate_topk(
    model: nn.Module,
    split: Split,
    stage: Literal["valid", "test"],
    ks: Sequence[int],
    ndcg: Literal["standard", "legacy", "ktup"] = "standard",
    batch_users: int = 1024,
    n_users: int | None = None,
    n_items: int | None = None,
    exclude_valid: bool = True,
    ndcg_authors: Literal["standard", "legacy", "ktup"] | None = None,
) -> dict[str, float]:
    """Top-K metrics on the validation or test positives of ``split``.

    Only ``label == 1`` rows count. ``"valid"``: the user's train positives are excluded
    from the ranking and the valid positives are relevant. ``"test"``: train and valid
    positives are excluded and the test positives are relevant. Relevant items that are
    also excluded are dropped from the relevant set (they could never be ranked). Users
    with at least one relevant item are evaluated. ``exclude_valid=False`` keeps the
    valid positives as (non-relevant) test candidates, as MKR's code ranks every item not
    among the user's training positives. See :func:`topk_metrics`.
    """
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    if not ks:
        raise ValueError("ks must not be empty")
    n_users = int(model.n_users if n_users is None else n_users)
    n_items = int(model.n_items if n_items is None else n_items)
    exclude = positives_csr(split.train, n_users, n_items)
    if stage == "test" and exclude_valid:
        exclude = exclude + positives_csr(split.valid, n_users, n_items)
        exclude.data[:] = 1
    rel = positives_csr(getattr(split, stage), n_users, n_items)
    rel = (rel - rel.multiply(exclude)).tocsr()
    rel.eliminate_zeros()
    users = np.flatnonzero(np.diff(rel.indptr) > 0)
    # distributed: each rank ranks a contiguous share of the users; rank 0 computes the
    # metrics of the gathered rankings once and every rank gets them
    lo, hi = distr.shard_bounds(len(users))
    ranked = distr.gather_rows(rank_topk(model, users[lo:hi], exclude, max(ks),
                                         batch_users=batch_users))
    metrics = (topk_metrics(ranked, rel[users], ks, ndcg=ndcg, ndcg_authors=ndcg_authors)
               if distr.is_main() else None)
    return distr.broadcast_object(metrics)
