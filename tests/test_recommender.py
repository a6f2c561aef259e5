"""The Recommender: one loaded run answering many requests (CLI, Python API, serve)."""

import numpy as np
import pytest
import torch

from kgrec.config import load_config
from kgrec.errors import KGRecError
from kgrec.recommend import Recommender
from kgrec.training.experiment import run


def _train(tmp_path, folder, model, model_args):
    cfg = load_config(raw={
        "model": model, "model_args": model_args,
        "data": {"dataset": str(folder), "layout": "processed"},
        "train": {"epochs": 1, "batch_size": 32, "threads": 1},
        "eval": {"ks": [1, 5]},
    })
    run(cfg, tmp_path / model, progress=False)
    return Recommender.from_run(tmp_path / model)


@pytest.mark.parametrize("model,args", [("mkr", {"dim": 4, "n_low_layers": 1}), ("hkrm", {"dim": 4})])
def test_recommend_explain_score(tiny_processed, tmp_path, model, args):
    rec = _train(tmp_path, tiny_processed, model, args)
    recs = rec.recommend("3", k=5, explain=True)
    assert [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    assert all("explanation" in r and "lines" in r["explanation"] for r in recs)
    assert not set(r["item_index"] for r in recs) & set(rec.seen(3).tolist())
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    # with seen items allowed, the top item is the best over all items
    all_scores = rec.model.score_all(torch.tensor([3]))[0]
    assert rec.recommend(3, k=1, exclude_seen=False)[0]["item_index"] == int(all_scores.argmax())
    p = rec.score([3, 3], [recs[0]["item"], recs[1]["item"]])
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))  # CTR models: probabilities
    with pytest.raises(KGRecError):
        rec.recommend("no-such-user")
    with pytest.raises(KGRecError):
        rec.recommend(3, k=0)
