"""benchmarks/hkrm_lastfm_gap.py: per-user AUC, the item-cosine score and the protocol checks
against brute-force forms on a toy dataset."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from kgrec.data.dataset import KGDataset, Split

from .conftest import load_benchmark


def load():
    return load_benchmark("hkrm_lastfm_gap")


TRAIN = np.array([[0, 0, 1], [0, 1, 1], [0, 4, 0], [1, 1, 1], [1, 2, 1], [1, 0, 0],
                  [2, 2, 1], [2, 3, 0]])
VALID = np.array([[2, 4, 1]])
TEST = np.array([[0, 3, 0], [0, 2, 1], [1, 3, 1], [1, 4, 0], [2, 0, 0], [2, 1, 1]])


def test_gauc_is_the_row_weighted_mean_of_per_user_aucs():
    mod = load()
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.2, 0.5, 0.1, 0.3, 0.8, 0.4])
    users = np.array([0, 0, 0, 1, 1, 1, 2])  # user 2 has one label only: left out
    a0 = roc_auc_score([1, 0, 0], [0.9, 0.2, 0.5])
    a1 = roc_auc_score([1, 0, 1], [0.1, 0.3, 0.8])
    assert mod.gauc(labels, scores, users) == (3 * a0 + 3 * a1) / 6


def test_item_cosine_scores_brute_force():
    mod = load()
    got = mod.item_cosine_scores(TRAIN, TEST, 3, 5)
    hist = {0: {0, 1}, 1: {1, 2}, 2: {2}}
    users_of = {i: {u for u, h in hist.items() if i in h} for i in range(5)}

    def cos(i, j):
        a, b = users_of[i], users_of[j]
        return len(a & b) / np.sqrt(len(a) * len(b)) if a and b else 0.0

    for k, (u, i, _) in enumerate(TEST):
        others = hist[u] - {i}
        want = np.mean([cos(i, j) for j in others]) if others else 0.0
        assert abs(got[k] - want) < 1e-6, (u, i)


def test_protocol_checks_on_a_toy_split():
    mod = load()
    rows = np.concatenate([TRAIN, VALID, TEST])
    ds = KGDataset(name="toy", interactions=rows, triples=np.array([[0, 0, 5], [1, 0, 6]]),
                   item_entity=np.arange(5), n_users=3, n_items=5, n_entities=7, n_relations=1)
    checks = mod.protocol_checks(ds, Split(train=TRAIN, valid=VALID, test=TEST))
    assert checks["pairs_in_two_splits"] == 0 and checks["repeated_pairs_any_label"] == 0
    assert checks["queries_equal_train_positives"]
    assert checks["query_pairs_in_valid"] == checks["query_pairs_in_test"] == 0
    assert checks["train_rows_with_target_in_query"] == 0
    # training: a positive's query loses its target (sizes 1, 1, 1, 1, 0), a negative's
    # keeps every training positive (2, 2, 1)
    assert checks["train_query_size"] == {"pos": 4 / 5, "neg": 5 / 3}
    assert checks["test_query_size"] == {"pos": 5 / 3, "neg": 5 / 3}
    p, m = np.array([2, 2, 1]), np.array([1, 1, 1])
    assert checks["test_auc_m_minus_p"] == roc_auc_score(TEST[:, 2], (m - p)[TEST[:, 0]])
    # a pair repeated in another split (here two test rows copied into validation) is counted
    leaky = Split(train=TRAIN, valid=np.concatenate([VALID, TEST[:2]]), test=TEST)
    assert mod.protocol_checks(ds, leaky)["pairs_in_two_splits"] == 2
