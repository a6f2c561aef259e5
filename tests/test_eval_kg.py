import numpy as np
import pytest
import torch
from torch import nn

from kgrec.evaluation import evaluate_kg, kg_metrics, ranks_from_scores, relation_categories

torch.set_num_threads(1)


def test_ranks_raw_and_filtered_by_hand():
    scores = torch.tensor(
        [
            [0.5, 0.9, 0.5, 0.1, 0.7],
            [0.2, 0.3, 0.4, 0.8, 0.6],
        ]
    )
    targets = torch.tensor([0, 3])
    # row 0: 0.9 and 0.7 are higher; 0.5 at entity 2 ties (does not count) -> raw 3
    # row 1: nothing above 0.8 -> raw 1
    assert ranks_from_scores(scores, targets).tolist() == [3, 1]
    mask = torch.tensor(
        [
            [True, True, False, False, False],  # entity 1 is another true answer
            [False, False, True, True, True],  # masking the target itself changes nothing
        ]
    )
    assert ranks_from_scores(scores, targets, mask).tolist() == [2, 1]


def test_kg_metrics_by_hand():
    m = kg_metrics(np.array([1, 2, 4, 11]))
    assert m["hits@1"] == pytest.approx(0.25)
    assert m["hits@3"] == pytest.approx(0.5)
    assert m["hits@10"] == pytest.approx(0.75)
    assert m["mean_rank"] == pytest.approx(4.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 11) / 4)


def test_relation_categories_toy_kg():
    triples = np.array(
        [
            # r0: 1-1 (the duplicate counts once, else tph would be 1.5)
            [0, 0, 1], [2, 0, 3], [0, 0, 1],
            # r1: one head, three tails -> tph 3, hpt 1
            [0, 1, 1], [0, 1, 2], [0, 1, 3],
            # r2: two heads, one tail -> tph 1, hpt 2
            [1, 2, 0], [2, 2, 0],
            # r3: heads {0,1} x tails {1,2} -> tph 2, hpt 2
            [0, 3, 1], [0, 3, 2], [1, 3, 1], [1, 3, 2],
            # r5: 3 triples, 2 heads, 3 tails -> tph exactly 1.5 (>= threshold), hpt 1
            [0, 5, 1], [0, 5, 2], [1, 5, 3],
        ]
    )  # fmt: skip
    cats = relation_categories(triples)
    assert cats == {0: "1-1", 1: "1-N", 2: "N-1", 3: "N-N", 5: "1-N"}
    assert relation_categories(triples, threshold=1.6)[5] == "1-1"


class TransEFixed(nn.Module):
    """score = -||e_h + r - e_t||_1 with fixed embeddings."""

    def __init__(self, ent: np.ndarray, rel: np.ndarray) -> None:
        super().__init__()
        self.ent = nn.Parameter(torch.tensor(ent))
        self.rel = nn.Parameter(torch.tensor(rel))

    def score_tails(self, heads, relations):
        q = self.ent[heads] + self.rel[relations]
        return -(q[:, None, :] - self.ent[None]).abs().sum(-1)

    def score_heads(self, relations, tails):
        q = self.ent[tails] - self.rel[relations]
        return -(self.ent[None] - q[:, None, :]).abs().sum(-1)


def _brute_force(ent, rel, test, known, exclude_query=False):
    known_set = {tuple(x) for x in known.tolist()}
    n_ent = len(ent)

    def f(h, r, t):
        return -sum(abs(ent[h][j] + rel[r][j] - ent[t][j]) for j in range(ent.shape[1]))

    out = {"head_raw": [], "head_f": [], "tail_raw": [], "tail_f": []}
    for h, r, t in test.tolist():
        true = f(h, r, t)
        tail_better = [e for e in range(n_ent) if f(h, r, e) > true and not (exclude_query and e == h)]
        head_better = [e for e in range(n_ent) if f(e, r, t) > true and not (exclude_query and e == t)]
        out["tail_raw"].append(1 + len(tail_better))
        out["tail_f"].append(1 + sum((h, r, e) not in known_set for e in tail_better))
        out["head_raw"].append(1 + len(head_better))
        out["head_f"].append(1 + sum((e, r, t) not in known_set for e in head_better))
    return {k: np.array(v) for k, v in out.items()}


def test_evaluate_kg_matches_brute_force():
    rng = np.random.default_rng(3)
    n_ent, n_rel, dim = 15, 4, 3
    ent = rng.normal(size=(n_ent, dim))
    rel = rng.normal(size=(n_rel, dim)) * 0.3
    # a dense-ish KG so that filtering changes many ranks; duplicates included
    known = np.column_stack(
        [rng.integers(0, 4, 80), rng.integers(0, n_rel, 80), rng.integers(0, n_ent, 80)]
    )
    test = known[rng.choice(len(known), 25, replace=False)]
    model = TransEFixed(ent, rel)
    out = evaluate_kg(model, test, known, batch_size=4)
    bf = _brute_force(ent, rel, test, known)
    assert (bf["tail_f"] < bf["tail_raw"]).any()  # the example does exercise the filter
    assert (bf["head_f"] < bf["head_raw"]).any()
    assert out["raw"] == pytest.approx(kg_metrics(np.concatenate([bf["head_raw"], bf["tail_raw"]])))
    assert out["filtered"] == pytest.approx(
        kg_metrics(np.concatenate([bf["head_f"], bf["tail_f"]]))
    )
    cats = relation_categories(known)
    assert set(out["categories"]) == {cats[r] for r in test[:, 1].tolist()}
    for name, res in out["categories"].items():
        sel = np.array([cats[r] == name for r in test[:, 1].tolist()])
        assert res["head"] == pytest.approx(kg_metrics(bf["head_f"][sel]))
        assert res["tail"] == pytest.approx(kg_metrics(bf["tail_f"][sel]))
    # batch size does not matter
    assert evaluate_kg(model, test, known, batch_size=1000)["filtered"] == out["filtered"]


def test_evaluate_kg_categories_from_other_triples():
    ent = np.eye(3)
    rel = np.zeros((2, 3))
    model = TransEFixed(ent, rel)
    test = np.array([[0, 0, 1], [1, 1, 2]])
    # categories from a graph where r0 is 1-N and r1 is N-1
    other = np.array([[0, 0, 1], [0, 0, 2], [0, 1, 2], [1, 1, 2]])
    out = evaluate_kg(model, test, test, categories_from=other)
    assert set(out["categories"]) == {"1-N", "N-1"}
    assert set(evaluate_kg(model, test, test)["categories"]) == {"1-1"}


def test_evaluate_kg_without_the_query_entity():
    rng = np.random.default_rng(5)
    n_ent, n_rel, dim = 12, 3, 3
    ent = rng.normal(size=(n_ent, dim))
    rel = rng.normal(size=(n_rel, dim)) * 0.05  # short translations: the query entity wins
    known = np.column_stack(
        [rng.integers(0, n_ent, 40), rng.integers(0, n_rel, 40), rng.integers(0, n_ent, 40)]
    )
    test = known[:15]
    model = TransEFixed(ent, rel)
    out = evaluate_kg(model, test, known, exclude_query=True)
    bf = _brute_force(ent, rel, test, known, exclude_query=True)
    every = _brute_force(ent, rel, test, known)
    assert (bf["tail_raw"] < every["tail_raw"]).any() and (bf["head_f"] < every["head_f"]).any()
    assert out["raw"] == pytest.approx(kg_metrics(np.concatenate([bf["head_raw"], bf["tail_raw"]])))
    assert out["filtered"] == pytest.approx(
        kg_metrics(np.concatenate([bf["head_f"], bf["tail_f"]]))
    )
