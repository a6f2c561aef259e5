"""ENMF: the whole-data loss (shared with JNSKR, models/nonsampling.py) against the
weighted squared loss over every pair, values and gradients; the user-batch sampler;
scoring; and a top-K floor on Last.FM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.config import load_config
from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import make_sampler
from kgrec.errors import ConfigError
from kgrec.models import jnskr, nonsampling
from kgrec.models.enmf import ENMF
from kgrec.training.experiment import run

from .conftest import REPO

torch.set_num_threads(1)

N_USERS, N_ITEMS = 6, 5
PAIRS = np.array([[0, 0], [0, 1], [1, 0], [1, 2], [2, 3], [3, 0], [3, 4], [4, 1], [4, 2],
                  [0, 4]])  # user 5 has no positive


def data() -> tuple[KGDataset, Split]:
    rows = np.c_[PAIRS, np.ones(len(PAIRS), np.int64)]
    ds = KGDataset("toy", rows, np.zeros((0, 3), np.int64), np.full(N_ITEMS, -1), N_USERS,
                   N_ITEMS, 1, 1)
    return ds, Split(rows, rows[:0], rows[:0])


def make(**kw) -> ENMF:
    ds, split = data()
    torch.manual_seed(0)
    args = dict(dim=3, weighting="popularity", c0=2.0, c_pos=1.4, dropout=0.0)
    args.update(kw)
    model = ENMF.build(ds, split, **args).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.6)
    return model


def brute(model: ENMF, users) -> torch.Tensor:
    """sum over every (u, v), u in users, of c_uv (r_uv - y_uv)^2 minus the constant c+."""
    observed = {tuple(p) for p in PAIRS}
    total = torch.zeros((), dtype=torch.float64)
    for u in users:
        for v in range(N_ITEMS):
            y = model.h @ (model.user_emb.weight[u] * model.item_emb.weight[v])
            if (u, v) in observed:
                total = total + model.c_pos * (1 - y) ** 2 - model.c_pos
            else:
                total = total + model.c_neg[v] * y ** 2
    return total


def grads(loss, model):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("weighting", ["popularity", "uniform"])
def test_whole_data_loss_and_gradients_match_every_pair(weighting):
    model = make(weighting=weighting, l2=0.0)
    ds, split = data()
    sampler = make_sampler("user_batches", ds, split, 2)
    batches = list(sampler.epoch(1))
    assert len(batches) == len(sampler) == 3  # users 0..4 have positives
    seen = torch.cat([b["users"] for b in batches]).tolist()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    for b in batches:
        eff, ref = model(b, "rec"), brute(model, b["users"].tolist())
        torch.testing.assert_close(eff, ref)
        g_eff, g_ref = grads(eff, model), grads(brute(model, b["users"].tolist()), model)
        for name in g_ref:
            torch.testing.assert_close(g_eff[name], g_ref[name], msg=name)


def test_weights_l2_and_dropout_change_training():
    ds, split = data()
    b = next(make_sampler("user_batches", ds, split, 4).epoch(0))
    base = make()(b, "rec")
    assert make(weighting="uniform")(b, "rec") != base
    assert make(c0=5.0)(b, "rec") != base
    assert make(weight_exponent=1.0)(b, "rec") != base
    assert make(c_pos=1.0)(b, "rec") != base
    assert make(l2=0.1)(b, "rec") != base
    model = make(dropout=0.5)
    model.train()
    torch.manual_seed(0)
    a = model(b, "rec")
    torch.manual_seed(1)
    assert model(b, "rec") != a
    u = make(weighting="uniform", c0=5.0)
    torch.testing.assert_close(u.c_neg, torch.full((N_ITEMS,), 1.0, dtype=u.c_neg.dtype))
    with pytest.raises(ConfigError):
        make(c0=-1.0)
    with pytest.raises(ConfigError):
        make(weighting="inverse")


def test_jnskr_uses_the_shared_loss():
    assert jnskr.cf_whole_data_loss is nonsampling.cf_whole_data_loss
    assert jnskr.negative_weights is nonsampling.negative_weights


def test_scores_are_the_prediction():
    model = make()
    ref = (model.user_emb.weight * model.h) @ model.item_emb.weight.T
    torch.testing.assert_close(model.score_all(torch.arange(N_USERS)), ref)
    users, items = torch.tensor([0, 5, 2]), torch.tensor([4, 0, 3])
    torch.testing.assert_close(model.score(users, items), ref[users, items])


@pytest.mark.slow
def test_enmf_lastfm_topk_floor(real_data, tmp_path):
    """Above item popularity on the per-user Last.FM split (Recall@10 0.122)."""
    cfg = load_config(REPO / "src" / "kgrec" / "presets" / "enmf-lastfm.yaml",
                      ["train.threads=1", "train.epochs=60"])
    m = run(cfg, tmp_path / "run", real_data, progress=False)
    assert m["topk"]["recall@10"] >= 0.16


def test_examples_are_observed_pairs_and_cap_training(tmp_path):
    """train.max_examples counts ENMF's observed pairs (as JNSKR's and BPRMF's epochs do), not
    its users: an epoch counts every training pair once, and a cap of one epoch's pairs stops
    training after that epoch."""
    ds, split = data()
    sampler = make_sampler("user_batches", ds, split, 2)
    assert sum(sampler.examples(b) for b in sampler.epoch(0)) == len(PAIRS)
    assert len(sampler) == 3  # 5 users with positives, 2 per batch: fewer rows than pairs

    from .conftest import write_processed

    tiny = write_processed(tmp_path / "tiny")
    cfg = load_config(REPO / "src/kgrec/presets/enmf-lastfm.yaml",
                      [f"data.dataset={tiny}", "data.layout=processed", "train.epochs=5",
                       "train.patience=5", "train.batch_size=7"])
    n_train = int(run(cfg, tmp_path / "full", progress=False)["history"][0]["examples_rec"])
    capped = load_config(REPO / "src/kgrec/presets/enmf-lastfm.yaml",
                         [f"data.dataset={tiny}", "data.layout=processed", "train.epochs=5",
                          "train.patience=5", "train.batch_size=7",
                          f"train.max_examples={{rec: {n_train}}}"])
    m = run(capped, tmp_path / "capped", progress=False)
    assert m["epochs"] == 1 and m["examples"]["rec"] == n_train
    assert n_train > 30  # more pairs than the 30 users the first run's epoch visited
