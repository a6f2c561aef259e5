"""Knowledge-graph completion: link prediction ranks (TransE Sec. 4.2, TransH Sec. 5.1).

For each test triple ``(h, r, t)`` every entity is ranked as the tail of ``(h, r, ?)``
and as the head of ``(?, r, t)``. *Raw* ranks count every entity scored above the
target; *filtered* ranks ignore entities that form another known true triple. KTUP
(Sec. 6.5, Table 3) reports filtered Hits@10 and mean rank, split by relation category.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from kgrec import parallel as distr
from kgrec.evaluation.ctr import inference
from kgrec.logs import Progress

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")


def ranks_from_scores(scores: Tensor, targets: Tensor, filter_mask: Tensor | None = None) -> Tensor:
    """Rank of each target among the candidates, 1 = best.

    ``rank = 1 + #{e : scores[b, e] > scores[b, target_b]}`` with entities in
    ``filter_mask`` (other true answers) left out of the count. Ties do not count
    against the target (optimistic rule), so a target tied with others still gets the
    best rank of the tie; the target itself never counts, whether or not it is masked.

    Args:
        scores: ``(B, E)`` candidate scores, higher is better.
        targets: ``(B,)`` index of the true entity of each row.
        filter_mask: optional bool ``(B, E)``, ``True`` for candidates to ignore.
    """
    target_scores = scores.gather(1, targets.view(-1, 1).long())
    higher = scores > target_scores
    if filter_mask is not None:
        higher &= ~filter_mask
    return higher.sum(dim=1) + 1


def kg_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Hits@1/3/10 (share of ranks ``<= N``), mean rank and mean reciprocal rank."""
    ranks = np.asarray(ranks, dtype=np.float64).ravel()
    if ranks.size == 0:
        return {k: math.nan for k in ("hits@10", "hits@1", "hits@3", "mean_rank", "mrr")}
    return {
        "hits@10": float(np.mean(ranks <= 10)),
        "hits@1": float(np.mean(ranks <= 1)),
        "hits@3": float(np.mean(ranks <= 3)),
        "mean_rank": float(ranks.mean()),
        "mrr": float(np.mean(1.0 / ranks)),
    }


def relation_categories(triples: np.ndarray, threshold: float = 1.5) -> dict[int, str]:
    """Mapping category of each relation present in ``triples`` (TransH Sec. 5.1).

    ``tph`` is the average number of distinct tails per (relation, head) and ``hpt`` the
    average number of distinct heads per (relation, tail), over the distinct triples.
    ``1-1``: both below ``threshold``; ``1-N``: ``tph >= threshold > hpt``; ``N-1``:
    ``hpt >= threshold > tph``; ``N-N``: both at or above it.
    """
    trip = np.unique(np.asarray(triples, dtype=np.int64).reshape(-1, 3), axis=0)
    if len(trip) == 0:
        return {}
    h, r, t = trip[:, 0], trip[:, 1], trip[:, 2]
    n_rel = int(r.max()) + 1
    n_ent = int(max(h.max(), t.max())) + 1
    n_triples = np.bincount(r, minlength=n_rel)
    heads_per_rel = np.bincount(np.unique(r * n_ent + h) // n_ent, minlength=n_rel)
    tails_per_rel = np.bincount(np.unique(r * n_ent + t) // n_ent, minlength=n_rel)
    present = np.flatnonzero(n_triples)
    tph = n_triples[present] / heads_per_rel[present]
    hpt = n_triples[present] / tails_per_rel[present]
    many_tails = tph >= threshold
    many_heads = hpt >= threshold
    names = np.array(CATEGORIES)[many_heads.astype(int) * 2 + many_tails.astype(int)]
    return {int(rel): str(name) for rel, name in zip(present, names, strict=True)}


class _Answers:
    """All known answers of queries ``(a, r)``, grouped by key in CSR-like arrays."""

    def __init__(self, a: np.ndarray, r: np.ndarray, answer: np.ndarray, n_rel: int) -> None:
        self.n_rel = n_rel
        keys = a * n_rel + r
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.answers = answer[order]

    def mask(self, a: np.ndarray, r: np.ndarray, n_cand: int, device: torch.device) -> Tensor:
        """Bool ``(B, n_cand)``: ``True`` at every known answer of query ``(a[b], r[b])``."""
        q = a * self.n_rel + r
        lo = np.searchsorted(self.keys, q, side="left")
        hi = np.searchsorted(self.keys, q, side="right")
        counts = hi - lo
        rows = np.repeat(np.arange(len(q)), counts)
        # position of each answer: lo of its row plus its offset within the row
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = self.answers[np.repeat(lo, counts) + offsets]
        out = torch.zeros(len(q), n_cand, dtype=torch.bool, device=device)
        out[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
        return out


def evaluate_kg(
    model: nn.Module,
    test_triples: np.ndarray,
    known_triples: np.ndarray,
    batch_size: int = 256,
    categories_from: np.ndarray | None = None,
    exclude_query: bool = False,
    desc: str = "KG completion",
) -> dict:
    """Raw and filtered link-prediction metrics of ``test_triples``.

    ``model.score_tails(heads, relations)`` and ``model.score_heads(relations, tails)``
    give ``(B, n_entities)`` scores, higher is better. The filter is every triple of
    ``known_triples`` (train + valid + test) other than the target. ``raw`` and
    ``filtered`` pool head and tail predictions (``2 * len(test_triples)`` ranks). The
    ``categories`` entry holds filtered metrics per relation category
    (:func:`relation_categories` of ``categories_from``, default ``known_triples``),
    head and tail predictions apart, as in KTUP Table 3; empty categories are left out.
    ``exclude_query`` drops the query's own entity (``h`` when ranking tails, ``t`` when
    ranking heads) from the candidates of raw and filtered ranks; the default keeps every
    entity, as TransE's protocol does, where a model with short translations scores the
    query entity itself first. Progress (queries ranked / total, ``desc``) shows as a bar on a
    terminal, else as a log line every 10 s of a long evaluation.
    """
    test = np.asarray(test_triples, dtype=np.int64).reshape(-1, 3)
    known = np.asarray(known_triples, dtype=np.int64).reshape(-1, 3)
    n_rel = int(max(known[:, 1].max(initial=-1), test[:, 1].max(initial=-1))) + 1
    by_head = _Answers(known[:, 0], known[:, 1], known[:, 2], n_rel)  # (h, r) -> tails
    by_tail = _Answers(known[:, 2], known[:, 1], known[:, 0], n_rel)  # (t, r) -> heads
    # distributed: each rank ranks a contiguous share of the queries; the ranks are
    # gathered and rank 0 computes the metrics once
    lo, hi = distr.shard_bounds(len(test))
    mine = test[lo:hi]
    ranks = {k: np.zeros(len(mine), np.int64) for k in ("tail_raw", "tail_f", "head_raw", "head_f")}
    with inference(model) as device, Progress(2 * len(mine), desc, "queries",
                                              enabled=distr.is_main()) as bar:
        for start in range(0, len(mine), batch_size):
            part = mine[start : start + batch_size]
            h, r, t = (torch.as_tensor(part[:, j], device=device) for j in range(3))
            sl = slice(start, start + len(part))
            for side, scores, target, answers, query in (
                ("tail", model.score_tails(h, r), t, by_head, part[:, 0]),
                ("head", model.score_heads(r, t), h, by_tail, part[:, 2]),
            ):
                mask = answers.mask(query, part[:, 1], scores.shape[1], device)
                own = None
                if exclude_query:
                    own = torch.zeros_like(mask)
                    own[torch.arange(len(part), device=device),
                        torch.as_tensor(query, device=device)] = True
                    mask |= own
                ranks[f"{side}_raw"][sl] = ranks_from_scores(scores, target, own).cpu().numpy()
                ranks[f"{side}_f"][sl] = ranks_from_scores(scores, target, mask).cpu().numpy()
            bar.update(2 * len(part))
    ranks = {k: distr.gather_rows(v) for k, v in ranks.items()}
    if not distr.is_main():
        return distr.broadcast_object(None)

    cats = relation_categories(known if categories_from is None else categories_from)
    code = np.full(max(n_rel, max(cats, default=-1) + 1), -1)  # relation -> category index
    for rel, name in cats.items():
        code[rel] = CATEGORIES.index(name)
    per_cat: dict[str, dict[str, dict[str, float]]] = {}
    for c, name in enumerate(CATEGORIES):
        sel = code[test[:, 1]] == c
        if sel.any():
            per_cat[name] = {
                "head": kg_metrics(ranks["head_f"][sel]),
                "tail": kg_metrics(ranks["tail_f"][sel]),
            }
    return distr.broadcast_object({
        "raw": kg_metrics(np.concatenate([ranks["head_raw"], ranks["tail_raw"]])),
        "filtered": kg_metrics(np.concatenate([ranks["head_f"], ranks["tail_f"]])),
        "categories": per_cat,
    })
