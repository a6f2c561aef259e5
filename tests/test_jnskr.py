"""JNSKR: the efficient whole-data losses (Eq. 5, Eq. 9) against loops over every pair and
triple, the attentive item representation, the sampler and the scoring API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import make_sampler
from kgrec.errors import ConfigError
from kgrec.models.jnskr import JNSKR, JNSKRSampler, negative_weights

torch.set_num_threads(1)

N_USERS, N_ITEMS, N_ENT, N_REL = 5, 5, 8, 3
# items 0..3 align with entities 2, 0, 5, 1; item 4 has no entity
ITEM_ENTITY = np.array([2, 0, 5, 1, -1])
TRIPLES = np.array([
    [2, 0, 3], [2, 1, 4], [2, 2, 0], [2, 0, 7],  # item 0: four triples
    [0, 1, 6], [0, 0, 6],                        # item 1
    [5, 2, 2],                                   # item 2
    [3, 1, 7], [6, 0, 2], [7, 2, 3],             # heads that are not items
])                                               # item 3 (entity 1) has no triple
PAIRS = np.array([[0, 0], [0, 1], [1, 0], [1, 2], [2, 3], [3, 0], [3, 4], [4, 1], [4, 2]])


def make_dataset(pairs: np.ndarray = PAIRS, triples: np.ndarray = TRIPLES
                 ) -> tuple[KGDataset, Split]:
    rows = np.c_[pairs, np.ones(len(pairs), np.int64)]
    ds = KGDataset("toy", rows, triples, ITEM_ENTITY, N_USERS, N_ITEMS, N_ENT, N_REL)
    return ds, Split(train=rows, valid=rows[:0], test=rows[:0])


def make_model(weighting="popularity", pairs=PAIRS, triples=TRIPLES,
               **kw) -> tuple[JNSKR, KGDataset, Split]:
    torch.manual_seed(0)
    ds, split = make_dataset(pairs, triples)
    args = dict(dim=4, attention_dim=3, weighting=weighting, c0=2.0, c1=3.0, c_pos=1.3,
                w_pos=0.7, mu=0.5, l2=0.01, l2_attention=0.02, dropout=0.0, kg_dropout=0.0)
    args.update(kw)
    model = JNSKR.build(ds, split, **args).double()
    with torch.no_grad():  # well-scaled random parameters so every term matters
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model, ds, split


def brute_item_repr(model: JNSKR, v: int) -> torch.Tensor:
    """q_v by the definition: loop over the item's triples."""
    e = int(ITEM_ENTITY[v])
    ent = model.entity_emb.weight
    row = e if e >= 0 else N_ENT  # the one unlinked item gets the first extra row
    e_v = ent[row] if model.item_emb is None else model.item_emb.weight[v]
    own = [tuple(t) for t in TRIPLES if t[0] == e] if e >= 0 else []
    if not own:
        return e_v
    logits = torch.stack([
        model.att_h @ torch.relu(model.att_w1 @ ent[t] + model.att_w2 @ model.relation_emb.weight[r]
                                 + model.att_b) for _, r, t in own])
    alpha = torch.softmax(logits, 0)
    return e_v + sum(a * ent[t] for a, (_, _, t) in zip(alpha, own, strict=True))


def brute_heads(model: JNSKR, items, heads) -> list[tuple[int, torch.Tensor]]:
    """The KG heads of a batch as ``(entity, embedding)``: the sampler's ``heads``
    (kg_heads "all") or the batch items whose entity heads a triple ("items"; their
    embedding is the item table's row when the tables are separate)."""
    ent = model.entity_emb.weight
    if model.kg_heads == "all":
        return [(h, ent[h]) for h in heads]
    out = []
    for v in items:
        e = int(ITEM_ENTITY[v])
        if e >= 0 and (TRIPLES[:, 0] == e).any():
            out.append((e, ent[e] if model.item_emb is None else model.item_emb.weight[v]))
    return out


def brute_losses(model: JNSKR, items, heads, pairs=PAIRS) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted squared losses over every (u, v), v in items, and every (h, r, t), h a KG
    head of the batch (:func:`brute_heads`), minus the parameter-free constant (sum of
    positive weights)."""
    observed = {tuple(p) for p in pairs}
    cf = torch.zeros((), dtype=torch.float64)
    for v in items:
        q = brute_item_repr(model, v)
        for u in range(N_USERS):
            y = (model.h * model.user_emb.weight[u] * q).sum()
            if (u, v) in observed:
                cf = cf + model.c_pos * (1.0 - y) ** 2 - model.c_pos
            else:
                cf = cf + model.c_neg[v] * y ** 2
    known = {tuple(t) for t in TRIPLES}
    kg = torch.zeros((), dtype=torch.float64)
    ent, rel = model.entity_emb.weight, model.relation_emb.weight
    for hd, e_h in brute_heads(model, items, heads):
        for r in range(N_REL):
            for t in range(N_ENT):
                g = (e_h * rel[r] * ent[t]).sum()
                if (hd, r, t) in known:
                    kg = kg + model.w_pos * (1.0 - g) ** 2 - model.w_pos
                else:
                    kg = kg + model.w_neg[hd] * g ** 2
    return cf, kg


def grads(loss, model):
    model.zero_grad()
    loss.backward()
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters()}


READINGS = [("all", "shared"), ("items", "shared"), ("items", "separate")]


@pytest.mark.parametrize("weighting", ["popularity", "uniform"])
@pytest.mark.parametrize("cold", [False, True])
@pytest.mark.parametrize(("kg_heads", "item_table"), READINGS)
def test_efficient_losses_and_gradients_match_brute_force(weighting, cold, kg_heads,
                                                          item_table):
    # cold: item 4 loses its only pair (c-_v = 0 under popularity weights, skipped)
    pairs = PAIRS[PAIRS[:, 1] != 4] if cold else PAIRS
    model, ds, split = make_model(weighting, pairs, kg_heads=kg_heads, item_table=item_table)
    model.eval()  # dropout off; the loss is still differentiable
    sampler = make_sampler("jnskr", ds, split, batch_size=2)
    batches = list(sampler.epoch(3))
    assert len(batches) == len(sampler) == (2 if cold else 3)  # items with pairs / 2
    total_eff = total_brute = 0.0
    for batch in batches:
        items, heads = batch["items"].tolist(), batch["heads"].tolist()
        cf, kg = brute_losses(model, items, heads, pairs)
        # each efficient loss, value and gradient wrt every parameter
        for eff, ref in ((model.cf_loss(batch), cf), (model.kg_loss(batch), kg)):
            torch.testing.assert_close(eff, ref, rtol=1e-5, atol=1e-5)
            g_eff = grads(eff, model)
            g_ref = grads(ref, model)
            for name in g_ref:
                torch.testing.assert_close(g_eff[name], g_ref[name], rtol=1e-5, atol=1e-5,
                                           msg=name)
        # the joint objective L_CF + mu L_KG + lambda ||Theta||^2
        joint = model(batch, task="rec")
        cf, kg = brute_losses(model, items, heads, pairs)
        ref = cf + model.mu * kg + model.regularisation()
        torch.testing.assert_close(joint, ref, rtol=1e-5, atol=1e-5)
        g_eff, g_ref = grads(joint, model), grads(ref, model)
        for name in g_ref:
            torch.testing.assert_close(g_eff[name], g_ref[name], rtol=1e-5, atol=1e-5, msg=name)
        total_eff += (model.cf_loss(batch) + model.kg_loss(batch)).item()
        total_brute += sum(brute_losses(model, items, heads, pairs)).item()
    # an epoch covers every item and every head with triples exactly once: the sum of the
    # batch losses is the whole-data loss
    cf_all, kg_all = brute_losses(model, range(N_ITEMS), sorted(set(TRIPLES[:, 0])), pairs)
    if model.item_emb is not None:  # the item table gets a gradient, the entity rows too
        assert model.item_emb.weight.shape == (N_ITEMS, 4)
        assert model.entity_emb.weight.shape == (N_ENT, 4)
    assert total_eff == pytest.approx((cf_all + kg_all).item(), rel=1e-9, abs=1e-9)
    assert total_brute == pytest.approx((cf_all + kg_all).item(), rel=1e-9, abs=1e-9)


def test_sampler_covers_items_and_heads_once_and_counts_only_active_items():
    ds, split = make_dataset()
    # item 4 gets no training positive: it rides along without counting in the batch size
    rows = np.c_[PAIRS, np.ones(len(PAIRS), np.int64)]
    rows = rows[rows[:, 1] != 4]
    s = JNSKRSampler.from_data(ds, Split(rows, rows[:0], rows[:0]), batch_size=2)
    assert len(s) == 2  # 4 active items / 2
    batches = list(s.epoch(0))
    items = np.concatenate([b["items"].numpy() for b in batches])
    heads = np.concatenate([b["heads"].numpy() for b in batches])
    assert sorted(items) == list(range(N_ITEMS))
    assert sorted(heads) == sorted(set(TRIPLES[:, 0]))
    pairs = {(int(u), int(b["items"][k])) for b in batches
             for k, u in zip(b["pos_index"], b["pos_users"], strict=True)}
    assert pairs == {tuple(p) for p in rows[:, :2]}
    trip = {(int(b["heads"][k]), int(r), int(t)) for b in batches
            for k, r, t in zip(b["kg_index"], b["kg_relations"], b["kg_tails"], strict=True)}
    assert trip == {tuple(t) for t in TRIPLES}
    # deterministic per seed
    again = list(s.epoch(0))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(batches, again, strict=True) for k in a)


def test_negative_weights_popularity_and_uniform():
    w = negative_weights(np.array([4, 1, 0, 9]), 10.0, "popularity", 0.5)
    np.testing.assert_allclose(w, 10.0 * np.array([2, 1, 0, 3]) / 6.0)
    u = negative_weights(np.array([4, 1, 0, 9]), 6.0, "uniform", 0.5, np.array([1, 1, 0, 1]))
    np.testing.assert_allclose(u, [2.0, 2.0, 0.0, 2.0])
    model, *_ = make_model("popularity")
    freq = np.bincount(PAIRS[:, 1], minlength=N_ITEMS) ** 0.5
    np.testing.assert_allclose(model.c_neg.numpy(), 2.0 * freq / freq.sum())


def test_item_repr_matches_definition_and_is_padding_invariant():
    model, *_ = make_model()
    model.eval()
    with torch.no_grad():
        alone = [model.item_repr(torch.tensor([v]))[0] for v in range(N_ITEMS)]
        together = model.item_repr(torch.arange(N_ITEMS))  # padded to item 0's 4 triples
        for v in range(N_ITEMS):
            torch.testing.assert_close(alone[v], brute_item_repr(model, v))
            torch.testing.assert_close(together[v], alone[v])


def test_explain_weights_cover_own_triples_and_sum_to_one():
    model, *_ = make_model()
    out = model.explain(0, [0, 1, 2, 3, 4])
    for rec, v in zip(out, range(N_ITEMS), strict=True):
        e = int(ITEM_ENTITY[v])
        assert rec["entity"] == e
        own = sorted((int(r), int(t)) for h, r, t in TRIPLES if h == e) if e >= 0 else []
        assert sorted(zip(rec["relations"].tolist(), rec["tails"].tolist(), strict=True)) == own
        if own:
            assert rec["weights"].sum() == pytest.approx(1.0, abs=1e-12)
            assert (rec["weights"] > 0).all()
        else:
            assert len(rec["weights"]) == 0
    # attention is not uniform once the parameters are random
    assert np.ptp(out[0]["weights"]) > 1e-3


def test_triple_cap_is_a_deterministic_subset():
    a, *_ = make_model(max_triples=2, triple_seed=1)
    b, *_ = make_model(max_triples=2, triple_seed=1)
    ra, rb = a.explain(0, [0])[0], b.explain(0, [0])[0]
    assert len(ra["tails"]) == 2
    assert np.array_equal(ra["tails"], rb["tails"]) and np.array_equal(ra["relations"],
                                                                       rb["relations"])
    own = {(int(r), int(t)) for h, r, t in TRIPLES if h == 2}
    assert set(zip(ra["relations"].tolist(), ra["tails"].tolist(), strict=True)) <= own
    seen = set()
    for seed in range(20):
        m, *_ = make_model(max_triples=2, triple_seed=seed)
        r = m.explain(0, [0])[0]
        seen.add(tuple(sorted(zip(r["relations"].tolist(), r["tails"].tolist(), strict=True))))
    assert len(seen) > 1  # different seeds draw different subsets


def test_scores_are_the_prediction_and_vectorised():
    model, *_ = make_model()
    model.eval()
    with torch.no_grad():
        users = torch.arange(N_USERS)
        full = model.score_all(users)
        assert full.shape == (N_USERS, N_ITEMS)
        for u in range(N_USERS):
            for v in range(N_ITEMS):
                ref = (model.h * model.user_emb.weight[u] * brute_item_repr(model, v)).sum()
                assert float(full[u, v]) == pytest.approx(float(ref), rel=1e-10, abs=1e-12)
        uu = users.repeat_interleave(N_ITEMS)
        ii = torch.arange(N_ITEMS).repeat(N_USERS)
        torch.testing.assert_close(model.score(uu, ii).view(N_USERS, N_ITEMS), full)
        # the cache follows parameter updates
        model.h.add_(1.0)
        assert not torch.allclose(model.score_all(users), full)
        t = model.score_tails(torch.tensor([2]), torch.tensor([1]))
        ref = (model.entity_emb.weight[2] * model.relation_emb.weight[1]
               * model.entity_emb.weight[:N_ENT]).sum(-1)
        torch.testing.assert_close(t[0], ref)
        torch.testing.assert_close(model.score_heads(torch.tensor([1]), torch.tensor([2])), t)


def test_training_steps_reduce_loss_and_reach_attention():
    torch.manual_seed(0)
    ds, split = make_dataset()
    model = JNSKR.build(ds, split, dim=8, c0=1.0, c1=1.0, dropout=0.1, kg_dropout=0.1)
    sampler = make_sampler("jnskr", ds, split, batch_size=8)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    batch = next(sampler.epoch(0))
    model.train()
    losses = []
    for step in range(60):
        opt.zero_grad()
        loss = model(batch, task="rec")
        loss.backward()
        if step == 0:
            for name in ("att_w1", "att_w2", "att_b", "att_h", "h", "user_emb.weight",
                         "entity_emb.weight", "relation_emb.weight"):
                g = dict(model.named_parameters())[name].grad
                assert g is not None and g.abs().sum() > 0, name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    model.eval()
    with torch.no_grad():
        s = model.score_all(torch.arange(N_USERS))
    # observed pairs rank above the unobserved ones on average after fitting
    obs = np.zeros((N_USERS, N_ITEMS), bool)
    obs[PAIRS[:, 0], PAIRS[:, 1]] = True
    assert s.numpy()[obs].mean() > s.numpy()[~obs].mean()


def test_bad_arguments_raise():
    from kgrec.errors import ConfigError

    ds, split = make_dataset()
    with pytest.raises(ConfigError):
        JNSKR.build(ds, split, weighting="zipf")
    with pytest.raises(ConfigError):
        JNSKR.build(ds, split, dropout=1.0)
    with pytest.raises(ConfigError):
        JNSKR.build(ds, split, max_triples=0)


def test_score_all_cache_sees_fused_optimizer_updates():
    # fused optimisers update parameters in place without bumping Tensor._version; the
    # eval-time item cache must still notice (it once served stale validation scores)
    torch.manual_seed(0)
    m = JNSKR(n_users=5, n_items=4, n_entities=6, n_relations=2,
              triples=np.array([[0, 0, 4], [1, 1, 5]]), train_pairs=np.array([[0, 1], [1, 2]]))
    opt = torch.optim.Adagrad(m.parameters(), lr=0.5, fused=True)
    m.eval()
    users = torch.arange(5)
    with torch.no_grad():
        before = m.score_all(users)
        for p in m.parameters():
            p.grad = torch.ones_like(p)
    opt.step()
    with torch.no_grad():
        after = m.score_all(users)
        m._cache = None
        fresh = m.score_all(users)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, fresh)


def test_kg_heads_items_weights_and_mechanism():
    # kg_heads "items": w-_h is normalised over the item heads (entities 2, 0, 5 with 4, 2
    # and 1 triples); non-item heads 3, 6, 7 get no weight
    model, *_ = make_model("popularity", kg_heads="items")
    ref = np.zeros(N_ENT)
    ref[[2, 0, 5]] = np.sqrt([4, 2, 1])
    np.testing.assert_allclose(model.w_neg.numpy(), 3.0 * ref / ref.sum())
    # the two readings differ exactly by the triples that non-item entities head: dropping
    # those triples leaves the "items" loss unchanged and changes the "all" loss
    item_only = TRIPLES[np.isin(TRIPLES[:, 0], ITEM_ENTITY)]
    loss = {}
    for reading in ("all", "items"):
        for name, triples in (("full", TRIPLES), ("item_only", item_only)):
            m, ds, split = make_model("popularity", triples=triples, kg_heads=reading)
            m.eval()
            batch = next(make_sampler("jnskr", ds, split, batch_size=10).epoch(0))
            with torch.no_grad():
                loss[reading, name] = m.kg_loss(batch).item()
    assert loss["items", "full"] == pytest.approx(loss["items", "item_only"], rel=1e-12)
    assert loss["all", "full"] != pytest.approx(loss["all", "item_only"], rel=1e-3)
    assert loss["all", "full"] != pytest.approx(loss["items", "full"], rel=1e-3)
    # and with only item heads in the KG the readings agree
    assert loss["all", "item_only"] == pytest.approx(loss["items", "item_only"], rel=1e-12)


def test_item_table_separate_uses_the_item_rows():
    model, *_ = make_model(kg_heads="items", item_table="separate")
    model.eval()
    with torch.no_grad():
        q = model.item_repr(torch.arange(N_ITEMS))
        model.item_emb.weight[1].add_(1.0)  # item 1's own row, not entity 0's
        q2 = model.item_repr(torch.arange(N_ITEMS))
    changed = (q2 - q).abs().sum(1) > 0
    assert changed.tolist() == [False, True, False, False, False]
    with pytest.raises(ConfigError):  # a non-item head would have no item row
        make_model(kg_heads="all", item_table="separate")
    with pytest.raises(ConfigError):
        make_model(kg_heads="heads")


def test_examples_count_observed_pairs_and_cap_training(tiny_processed, tmp_path):
    """``train.max_examples`` counts a JNSKR batch's observed pairs (as BPRMF's rows), not
    its items: one epoch is every training pair once."""
    from kgrec.config import load_config
    from kgrec.training.experiment import prepare_data, run

    raw = {"model": "jnskr", "model_args": {"dim": 4, "c0": 2.0, "c1": 2.0},
           "data": {"dataset": str(tiny_processed), "layout": "processed", "split": "per_user",
                    "negatives": "drop"},
           "train": {"epochs": 3, "batch_size": 4, "optimizer": "adagrad", "lr": 0.05,
                     "threads": 1, "monitor": "valid.recall@5"},
           "eval": {"protocols": ["topk"], "ks": [5]}, "seed": 0}
    cfg = load_config(raw=raw)
    ds, split = prepare_data(cfg)
    n_pairs = len(np.unique(split.train[split.train[:, 2] == 1, :2], axis=0))
    s = make_sampler("jnskr", ds, split, batch_size=4)
    batches = list(s.epoch(0))
    assert sum(s.examples(b) for b in batches) == n_pairs
    assert n_pairs > len(batches[0]["items"]) * len(batches)  # items would undercount
    m = run(cfg, tmp_path / "full", progress=False)
    assert [h["examples_rec"] for h in m["history"]] == [n_pairs * k for k in (1, 2, 3)]
    cap = n_pairs + 1  # stops one step into the second epoch
    raw["train"]["max_examples"] = {"rec": cap}
    m = run(load_config(raw=raw), tmp_path / "cap", progress=False)
    assert m["epochs"] == 2 and cap <= m["examples"]["rec"] < 2 * n_pairs


def _jnskr_time():
    from .conftest import load_benchmark

    return load_benchmark("jnskr_time")


def test_jnskr_time_summary_and_config_fallback():
    mod = _jnskr_time()
    history = [{"epoch": 0, "examples_rec": 10, "valid_recall@20": 0.1, "seconds": 2.0},
               {"epoch": 1, "examples_rec": 20, "valid_recall@20": 0.3, "seconds": 3.0},
               {"epoch": 2, "examples_rec": 30, "valid_recall@20": 0.3, "seconds": 4.0},
               {"epoch": 3, "examples_rec": 40, "valid_recall@20": 0.2, "seconds": 5.0}]
    s = mod.summarise({"history": history, "train_seconds": 8.0})
    assert s == {"epochs": 4, "best_epoch": 2, "valid_recall@20": 0.3, "s_per_epoch": 2.0,
                 "train_s_to_best": 4.0, "wall_s_to_best": 5.0, "examples_to_best": {"rec": 20}}
    raw, source = mod.raw_config("jnskr", "dbbook2014")
    assert source == "jnskr-dbbook2014" and raw["data"]["layout"] == "ktup"
    raw, source = mod.raw_config("mkr", "dbbook2014")  # no preset: -book's with dbbook data
    assert raw["model"] == "mkr" and raw["data"]["dataset"] == "dbbook2014"
    assert "bprmf-dbbook2014" in source
