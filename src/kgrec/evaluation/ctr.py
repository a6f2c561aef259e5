"""Click-through-rate prediction metrics (MKR Sec. 4.3: AUC and accuracy on labelled pairs)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); CPU when it has neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def inference(model: nn.Module) -> Iterator[torch.device]:
    """Eval mode and ``torch.no_grad`` for the block; the training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model_device(model)
    finally:
        model.train(was_training)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; ``nan`` when ``labels`` hold a single class (or none)."""
    labels = np.asarray(labels).ravel()
    if np.unique(labels).size < 2:
        return math.nan
    from sklearn.metrics import roc_auc_score  # here: sklearn adds ~0.7 s to `kgrec serve` start

    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose prediction ``probs >= threshold`` equals the 0/1 label."""
    labels = np.asarray(labels).ravel()
    if labels.size == 0:
        return math.nan
    pred = np.asarray(probs).ravel() >= threshold
    return float(np.mean(pred == (labels == 1)))


def ctr_scores(model: nn.Module, rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """``model.score`` of the ``(user, item, ...)`` rows, float64, in batches, in eval mode
    without gradients (the training flag restored after)."""
    rows = np.asarray(rows, dtype=np.int64)
    chunks: list[np.ndarray] = []
    with inference(model) as device:
        for start in range(0, len(rows), batch_size):
            part = torch.as_tensor(rows[start : start + batch_size, :2], device=device)
            chunks.append(model.score(part[:, 0], part[:, 1]).double().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros(0)


def evaluate_ctr(model: nn.Module, rows: np.ndarray, batch_size: int = 65536) -> dict[str, float]:
    """AUC and accuracy of ``model.score`` on labelled rows ``(user, item, label)``.

    Scores are read as logits: probabilities are ``sigmoid(score)`` and accuracy uses the
    0.5 threshold on them. AUC is computed on the scores themselves (the same ranking as
    the probabilities, without float saturation of the sigmoid creating ties).
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    scores = ctr_scores(model, rows, batch_size)
    from scipy.special import expit  # here, as sklearn above: faster `kgrec serve` start

    probs = expit(scores)
    return {"auc": auc(rows[:, 2], scores), "acc": accuracy(rows[:, 2], probs)}
