"""MKR equations against explicit forms (Eq. 1-2, 6-9)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from kgrec.data import load_dataset, ratio_split
from kgrec.data.samplers import make_sampler
from kgrec.errors import ConfigError
from kgrec.models.mkr import MKR, CrossCompress, DCNUnit, StitchUnit


def test_cross_compress_matches_explicit_outer_product():
    torch.manual_seed(0)
    d, b = 5, 7
    unit = CrossCompress(d).double()
    with torch.no_grad():
        unit.b_v.normal_()
        unit.b_e.normal_()
    v, e = torch.randn(b, d, dtype=torch.float64), torch.randn(b, d, dtype=torch.float64)
    w_vv, w_ev, w_ve, w_ee = unit.w
    v_next, e_next = unit(v, e)
    for k in range(b):
        C = torch.outer(v[k], e[k])  # Eq. 1: C = v e^T, C[i, j] = v_i e_j
        assert torch.allclose(C[1, 3], v[k, 1] * e[k, 3])
        v_ref = C @ w_vv + C.T @ w_ev + unit.b_v  # Eq. 2
        e_ref = C @ w_ve + C.T @ w_ee + unit.b_e
        assert torch.allclose(v_next[k], v_ref, atol=1e-12)
        assert torch.allclose(e_next[k], e_ref, atol=1e-12)


def _model(tiny_processed, **kw):
    ds = load_dataset(str(tiny_processed), "processed")
    torch.manual_seed(0)
    return ds, MKR.build(ds, ratio_split(ds.interactions, seed=0), dim=6, n_low_layers=2, **kw)


def test_score_all_equals_pairwise_score(tiny_processed):
    for inner in (True, False):
        ds, m = _model(tiny_processed, inner_product=inner, n_high_layers=2)
        users = torch.arange(ds.n_users)
        full = m.score_all(users)
        pairs = m.score(users.repeat_interleave(ds.n_items), torch.arange(ds.n_items).repeat(ds.n_users))
        assert torch.allclose(full, pairs.view(ds.n_users, ds.n_items), atol=1e-5)


def test_items_pair_with_their_entities(tiny_processed):
    ds, m = _model(tiny_processed)
    items = torch.tensor([0, 3, 5])
    v_ref = m.cross(items, items)[0]  # processed layout: item i is entity i
    assert torch.allclose(m.item_latent(items), v_ref)
    heads = torch.tensor([2, 4])
    h_item = m.pair_item[heads]
    assert h_item.tolist() == [2, 4]


def test_losses_follow_eq9(tiny_processed):
    ds, m = _model(tiny_processed, l2_weight=0.0, kge_weight=0.3)
    batch = {"users": torch.tensor([0, 1]), "items": torch.tensor([2, 3]),
             "labels": torch.tensor([1.0, 0.0])}
    logits = (m.user_latent(batch["users"]) * m.item_latent(batch["items"])).sum(-1)
    expected = -(torch.log(torch.sigmoid(logits[0])) + torch.log(1 - torch.sigmoid(logits[1]))) / 2
    assert torch.allclose(m(batch, task="rec"), expected, atol=1e-6)
    kb = {"heads": torch.tensor([0, 1]), "relations": torch.tensor([0, 2]),
          "tails": torch.tensor([45, 50]), "corrupt_tails": torch.tensor([7, 9])}
    _, t_hat = m.predict_tail(kb["heads"], kb["relations"])
    pos = torch.sigmoid((m.tail_latent(kb["tails"]) * t_hat).sum(-1))
    neg = torch.sigmoid((m.tail_latent(kb["corrupt_tails"]) * t_hat).sum(-1))
    assert torch.allclose(m(kb, task="kge"), -0.3 * (pos.mean() - neg.mean()), atol=1e-6)


def test_training_steps_reduce_rs_loss(tiny_processed):
    ds, m = _model(tiny_processed)
    tr = torch.from_numpy(ds.interactions)
    batch = {"users": tr[:, 0], "items": tr[:, 1], "labels": tr[:, 2].float()}
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    first = m(batch, task="rec").item()
    for _ in range(100):
        opt.zero_grad()
        m(batch, task="rec").backward()
        opt.step()
    assert m(batch, task="rec").item() < first - 0.1
    assert F.binary_cross_entropy_with_logits(
        m.score(batch["users"], batch["items"]), batch["labels"]).item() < 0.6


def test_kge_rmse_is_table4_form(tiny_processed):
    ds, m = _model(tiny_processed)
    t = torch.from_numpy(ds.triples[:10])
    _, t_hat = m.predict_tail(t[:, 0], t[:, 1])
    tail = m.tail_latent(t[:, 2])
    ref = np.mean(np.sqrt(((tail - t_hat) ** 2).sum(-1).detach().numpy() / m.dim))
    assert abs(m.kge_rmse(t) - ref) < 1e-6


def _pairs(d=5, b=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, d, dtype=torch.float64, generator=g) for _ in range(4)]


def test_dcn_unit_matches_eq13():
    torch.manual_seed(0)
    unit = DCNUnit(5).double()
    with torch.no_grad():
        unit.b_v.normal_()
        unit.b_e.normal_()
    v, e, v0, e0 = _pairs()
    w_ev, w_ve = unit.w
    v_next, e_next = unit(v, e, v0, e0)
    for k in range(len(v)):
        # Eq. 13 (Eq. 12's DCN layer x0 x_l^T w + x_l + b, crossed between the tasks)
        v_ref = torch.outer(e0[k], v[k]) @ w_ev + v[k] + unit.b_v
        e_ref = torch.outer(v0[k], e[k]) @ w_ve + e[k] + unit.b_e
        assert torch.allclose(v_next[k], v_ref, atol=1e-12)
        assert torch.allclose(e_next[k], e_ref, atol=1e-12)


def test_stitch_unit_is_eq15_with_scalars():
    unit = StitchUnit(5).double()
    with torch.no_grad():
        unit.alpha.copy_(torch.tensor([[0.7, -0.2], [0.4, 1.3]]))
        unit.b_v.normal_()
        unit.b_e.normal_()
    v, e, v0, e0 = _pairs(seed=1)
    v_next, e_next = unit(v, e, v0, e0)
    for k in range(len(v)):
        stacked = torch.stack([v[k], e[k]])  # (2, d): the [v; e] of Eq. 14-15
        ref = unit.alpha @ stacked
        assert torch.allclose(v_next[k], ref[0] + unit.b_v, atol=1e-12)
        assert torch.allclose(e_next[k], ref[1] + unit.b_e, atol=1e-12)


def test_every_unit_lets_the_kg_side_change_the_rs_score(tiny_processed):
    """The item's score moves when its aligned entity's embedding moves (the transfer works),
    and the KGE step's gradient reaches the item embeddings only through the unit."""
    for unit in ("cross_compress", "dcn", "stitch"):
        ds, m = _model(tiny_processed, unit=unit)
        users, items = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
        before = m.score(users, items).detach().clone()
        with torch.no_grad():
            m.entity_emb.weight[items] += 0.5  # processed layout: item i is entity i
        assert (m.score(users, items) - before).abs().min() > 1e-4, unit
        kb = {"heads": torch.tensor([3, 4]), "relations": torch.tensor([0, 1]),
              "tails": torch.tensor([41, 45]), "corrupt_tails": torch.tensor([7, 9])}
        m(kb, task="kge").backward()
        assert m.item_emb.weight.grad[[3, 4]].abs().sum() > 0, unit
    with pytest.raises(ConfigError, match="unit"):
        _model(tiny_processed, unit="bogus")


def test_mkr_kge_step_draws_only_what_it_uses(tiny_processed):
    ds, m = _model(tiny_processed)
    split = ratio_split(ds.interactions, seed=0)
    batch = next(make_sampler("triples", ds, split, 8, **m.sampler_defaults("kge")).epoch(0))
    assert set(batch) == {"heads", "relations", "tails", "corrupt_tails"}
    _, m2 = _model(tiny_processed, kge_negatives=False)
    batch = next(make_sampler("triples", ds, split, 8, **m2.sampler_defaults("kge")).epoch(0))
    assert set(batch) == {"heads", "relations", "tails"}
    assert torch.isfinite(m2(batch, task="kge"))
    full = next(make_sampler("triples", ds, split, 8).epoch(0))
    assert {"corrupt_heads", "corrupt_tails"} <= set(full)
