import math

import numpy as np
import pytest
import torch
from torch import nn

from kgrec.evaluation import accuracy, auc, evaluate_ctr

torch.set_num_threads(1)


def test_auc_hand_example():
    # positive pairs (pos, neg): (.9,.8) ok, (.9,.1) ok, (.3,.8) wrong, (.3,.1) ok -> 3/4
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (1 vs .5) 1, (.5 vs .5) 1/2
    assert auc(np.array([1, 1, 0]), np.array([1.0, 0.5, 0.5])) == pytest.approx(0.75)


def test_auc_single_class_is_nan():
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.4])))
    assert math.isnan(auc(np.array([], dtype=int), np.array([])))


def test_accuracy_threshold():
    labels = np.array([1, 0, 1, 0])
    probs = np.array([0.9, 0.5, 0.3, 0.1])
    # predictions at 0.5: 1, 1 (0.5 >= 0.5), 0, 0 -> correct: yes, no, no, yes
    assert accuracy(labels, probs) == pytest.approx(0.5)
    # at 0.2: 1, 1, 1, 0 -> correct: yes, no, yes, yes
    assert accuracy(labels, probs, threshold=0.2) == pytest.approx(0.75)


class TableModel(nn.Module):
    """score(u, i) = logits[u, i]; records the batch sizes and modes it was called with."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))
        self.calls: list[tuple[int, bool, bool]] = []

    def score(self, users, items):
        self.calls.append((len(users), self.training, torch.is_grad_enabled()))
        return self.logits[users, items]


def test_evaluate_ctr_batches_and_restores_mode():
    logits = np.array([[2.0, -1.0, 0.5], [-3.0, 1.0, -0.2]])
    rows = np.array([[0, 0, 1], [0, 1, 0], [0, 2, 0], [1, 0, 0], [1, 1, 1], [1, 2, 1]])
    model = TableModel(logits)
    model.train()
    out = evaluate_ctr(model, rows, batch_size=4)
    # positives' logits 2, 1, -0.2; negatives' -1, 0.5, -3.
    # pairs won by the positive: 2 beats all 3, 1 beats all 3, -0.2 beats -1 and -3 -> 8/9
    assert out["auc"] == pytest.approx(8 / 9)
    # predicted 1 iff logit >= 0: rows -> 1,0,1,0,1,0 vs labels 1,0,0,0,1,1 -> 4 of 6
    assert out["acc"] == pytest.approx(4 / 6)
    assert [c[0] for c in model.calls] == [4, 2]
    assert all(not training and not grad for _, training, grad in model.calls)
    assert model.training
    assert evaluate_ctr(model, rows, batch_size=100) == out
