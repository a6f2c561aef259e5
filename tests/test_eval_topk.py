import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

import kgrec.evaluation.topk as topk_mod
from kgrec.data.dataset import Split
from kgrec.evaluation import evaluate_topk, positives_csr, rank_topk, topk_metrics

torch.set_num_threads(1)

L3 = 1 / math.log2(3)  # discount of rank 2
L4 = 1 / math.log2(4)  # discount of rank 3 (= 0.5)

# user 0: hits at rank 2 only (|rel| = 2); user 1: no relevant item (skipped);
# user 2: hits at ranks 1 and 3 (|rel| = 2).
RANKED = np.array([[5, 1, 7], [2, 3, 4], [8, 6, 0]])
RELEVANT = [np.array([1, 9]), np.array([], dtype=np.int64), np.array([8, 0])]


def test_topk_metrics_standard_by_hand():
    m = topk_metrics(RANKED, RELEVANT, [1, 2, 3])
    # K = 1: user 0 (P, R, F1, hit, ndcg) = 0; user 2: P=1, R=1/2, F1=2/3, hit=1, ndcg=1
    assert m["precision@1"] == pytest.approx(0.5)
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["f1@1"] == pytest.approx(1 / 3)
    assert m["hit@1"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(0.5)
    # K = 2: both have 1 hit of 2 relevant: P = R = F1 = 1/2. IDCG = 1 + L3.
    # ndcg: user 0 L3 / (1 + L3), user 2 1 / (1 + L3)
    for name in ("precision", "recall", "f1"):
        assert m[f"{name}@2"] == pytest.approx(0.5)
    assert m["hit@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx((L3 / (1 + L3) + 1 / (1 + L3)) / 2)
    # K = 3: user 0 P=1/3, R=1/2, F1=0.4; user 2 P=2/3, R=1, F1=0.8
    assert m["precision@3"] == pytest.approx(0.5)
    assert m["recall@3"] == pytest.approx(0.75)
    assert m["f1@3"] == pytest.approx(0.6)
    assert m["hit@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx((L3 / (1 + L3) + (1 + L4) / (1 + L3)) / 2)


def test_topk_metrics_legacy_kgat_by_hand():
    m = topk_metrics(RANKED, RELEVANT, [1, 2, 3], ndcg="legacy")
    # KGAT: ideal = sorted hit vector of the top max(ks) = 3.
    # user 0: r = [0,1,0] -> ideal [1,0,0]: ndcg@1 = 0, @2 = L3 / 1, @3 = L3 / 1
    # user 2: r = [1,0,1] -> ideal [1,1,0]: @1 = 1, @2 = 1 / (1 + L3), @3 = (1 + L4) / (1 + L3)
    assert m["ndcg@1"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx((L3 + 1 / (1 + L3)) / 2)
    assert m["ndcg@3"] == pytest.approx((L3 + (1 + L4) / (1 + L3)) / 2)
    # the other metrics do not depend on the NDCG variant
    std = topk_metrics(RANKED, RELEVANT, [1, 2, 3])
    assert m["ndcg@3"] != pytest.approx(std["ndcg@3"])
    assert {k: v for k, v in m.items() if "ndcg" not in k} == {
        k: v for k, v in std.items() if "ndcg" not in k
    }


def test_topk_metrics_ktup_by_hand():
    m = topk_metrics(RANKED, RELEVANT, [1, 2, 3], ndcg="ktup")
    # KTUP: discounts [1, 1, L3], ideal = sorted hit vector of the top K.
    # user 0: @2 r=[0,1] -> 1/1, @3 r=[0,1,0] -> 1/1; user 2: @2 r=[1,0] -> 1, @3 -> (1+L3)/2
    assert m["ndcg@1"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx((1 + (1 + L3) / 2) / 2)


def test_ndcg_authors_reported_beside_the_standard_ndcg_by_hand():
    # KGAT's/JNSKR's NDCG ("legacy", ideal from the hits in the top max(ks) = 3) beside
    # the standard one in one evaluation; values as in the two hand-computed tests above
    m = topk_metrics(RANKED, RELEVANT, [1, 2, 3], ndcg_authors="legacy")
    assert m["ndcg@2"] == pytest.approx((L3 / (1 + L3) + 1 / (1 + L3)) / 2)
    assert m["ndcg@3"] == pytest.approx((L3 / (1 + L3) + (1 + L4) / (1 + L3)) / 2)
    assert m["ndcg_authors@1"] == pytest.approx(0.5)
    assert m["ndcg_authors@2"] == pytest.approx((L3 + 1 / (1 + L3)) / 2)
    assert m["ndcg_authors@3"] == pytest.approx((L3 + (1 + L4) / (1 + L3)) / 2)
    assert {k: v for k, v in m.items() if "authors" not in k} == topk_metrics(
        RANKED, RELEVANT, [1, 2, 3])
    # KTUP's variant as the second one
    kt = topk_metrics(RANKED, RELEVANT, [2, 3], ndcg_authors="ktup")
    assert kt["ndcg_authors@2"] == pytest.approx(1.0)
    assert kt["ndcg_authors@3"] == pytest.approx((1 + (1 + L3) / 2) / 2)
    # and through evaluate_topk (the path of eval.ndcg_authors)
    e = evaluate_topk(FixedScores(SCORES), _split(), "valid", [1, 2], ndcg_authors="legacy")
    assert set(e) - set(evaluate_topk(FixedScores(SCORES), _split(), "valid", [1, 2])) == {
        "ndcg_authors@1", "ndcg_authors@2"}
    with pytest.raises(ValueError):
        topk_metrics(RANKED, RELEVANT, [1], ndcg_authors="kgat")


def test_topk_metrics_csr_input_padding_and_duplicates():
    rel_csr = sp.csr_matrix(([1, 1, 1, 1], ([0, 0, 2, 2], [1, 9, 8, 0])), shape=(3, 10))
    assert topk_metrics(RANKED, rel_csr, [1, 3]) == topk_metrics(RANKED, RELEVANT, [1, 3])
    # duplicated relevant ids count once; -1 padding never hits but counts in K
    m = topk_metrics(np.array([[4, -1]]), [np.array([4, 4, 2])], [2])
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(0.5)


def test_topk_metrics_no_relevant_rows_is_nan():
    m = topk_metrics(RANKED[1:2], RELEVANT[1:2], [1])
    assert math.isnan(m["recall@1"])


class FixedScores(nn.Module):
    def __init__(self, scores: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor(scores, dtype=torch.float32))
        self.n_users, self.n_items = scores.shape

    def score_all(self, users):
        assert not self.training and not torch.is_grad_enabled()
        return self.table[users]


def test_rank_topk_excludes_and_chunking_is_invariant():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 7))
    model = FixedScores(scores)
    exclude = sp.random(5, 7, density=0.3, random_state=1, format="csr")
    exclude.data[:] = 1
    users = np.array([4, 0, 2, 3])
    one = rank_topk(model, users, exclude, k_max=3, batch_users=1024)
    chunked = rank_topk(model, users, exclude, k_max=3, batch_users=1)
    np.testing.assert_array_equal(one, chunked)
    dense = exclude.toarray().astype(bool)
    for row, u in enumerate(users):
        allowed = np.flatnonzero(~dense[u])
        expected = allowed[np.argsort(-scores[u, allowed])][:3]
        np.testing.assert_array_equal(one[row, : len(expected)], expected)
        assert (one[row, len(expected) :] == -1).all()
    assert model.training  # mode restored


def test_rank_topk_pads_short_lists():
    model = FixedScores(np.array([[0.1, 0.4, 0.3, 0.2]]))
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    np.testing.assert_array_equal(rank_topk(model, [0], exclude, k_max=5), [[2, 0, -1, -1, -1]])


def _split():
    # user 0: train {0}, valid {1}, test {2, 0 (also train: dropped)} + a negative 5
    # user 1: train {3}, no valid, test {4}; user 2: train {1}, valid {2}, no test
    train = np.array([[0, 0, 1], [1, 3, 1], [2, 1, 1], [0, 4, 0]])
    valid = np.array([[0, 1, 1], [2, 2, 1], [1, 0, 0]])
    test = np.array([[0, 2, 1], [0, 0, 1], [0, 5, 0], [1, 4, 1]])
    return Split(train=train, valid=valid, test=test)


SCORES = np.array(
    [
        [9.0, 8.0, 1.0, 7.0, 0.0, 6.0],
        [0.0, 1.0, 2.0, 9.0, 3.0, 4.0],
        [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
    ]
)


def test_positives_csr_keeps_label_one_once():
    rows = np.array([[0, 1, 1], [0, 1, 1], [1, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(positives_csr(rows, 2, 3).toarray(), [[0, 1, 0], [1, 0, 0]])


def test_evaluate_topk_test_stage(monkeypatch):
    captured = {}
    real = topk_mod.rank_topk

    def spy(model, users, exclude, k_max, batch_users=1024):
        captured["users"], captured["ranked"] = users, real(model, users, exclude, k_max, 1)
        return captured["ranked"]

    monkeypatch.setattr(topk_mod, "rank_topk", spy)
    split = _split()
    m = evaluate_topk(FixedScores(SCORES), split, "test", [1, 3])
    np.testing.assert_array_equal(captured["users"], [0, 1])
    ranked = captured["ranked"]
    # neither train nor valid positives are ever ranked
    seen = {(0, 0), (0, 1), (1, 3), (2, 1), (2, 2)}
    for row, u in enumerate(captured["users"]):
        assert not {(u, int(i)) for i in ranked[row]} & seen
    np.testing.assert_array_equal(ranked, [[3, 5, 2], [5, 4, 2]])
    # user 0 relevant {2} hit at rank 3; user 1 relevant {4} hit at rank 2
    assert m["precision@1"] == 0.0 and m["hit@1"] == 0.0 and m["ndcg@1"] == 0.0
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["f1@3"] == pytest.approx(0.5)
    assert m["hit@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx((L4 + L3) / 2)


def test_evaluate_topk_valid_stage():
    m = evaluate_topk(FixedScores(SCORES), _split(), "valid", [1, 2])
    # user 0 (train 0 excluded): ranking 1, 3, ... relevant {1} -> hit at 1
    # user 2 (train 1 excluded): ranking 0, 2, ... relevant {2} -> hit at 2; user 1 skipped
    assert m["precision@1"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(1.0)
    assert m["ndcg@2"] == pytest.approx((1 + L3) / 2)


def test_bad_arguments():
    with pytest.raises(ValueError):
        topk_metrics(RANKED, RELEVANT, [4])
    with pytest.raises(ValueError):
        topk_metrics(RANKED, RELEVANT, [1], ndcg="other")
    with pytest.raises(ValueError):
        evaluate_topk(FixedScores(SCORES), _split(), "train", [1])


def test_exclude_valid_false_keeps_valid_positives_as_candidates():
    import numpy as np
    import torch

    from kgrec.data.dataset import Split
    from kgrec.evaluation.topk import evaluate_topk

    class Fixed(torch.nn.Module):
        n_users, n_items = 1, 4

        def score_all(self, users):
            return torch.tensor([[4.0, 3.0, 2.0, 1.0]]).expand(len(users), -1)

    split = Split(train=np.array([[0, 0, 1]]), valid=np.array([[0, 1, 1]]), test=np.array([[0, 2, 1]]))
    # item 0 (train) is always excluded; item 1 (valid) ranks first unless excluded
    with_valid = evaluate_topk(Fixed(), split, "test", [1], exclude_valid=False)
    without = evaluate_topk(Fixed(), split, "test", [1])
    assert with_valid["hit@1"] == 0.0 and without["hit@1"] == 1.0
