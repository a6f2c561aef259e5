import math

import numpy as np
import pytest
import torch

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models import get_model_class
from kgrec.models.hkrm import (
    HKRM,
    attribute_fields,
    masked_cross_entropy,
    masked_kl,
    masked_softmax,
    user_queries,
)

torch.set_num_threads(1)

N_ITEMS, N_USERS = 6, 4
# entities 0..5 are the items, 6..11 attribute values; relations:
# 0 genre (every item), 1 author (items 0-2), 2 rare (item 5 only), 3 item -> item (no value)
KG = np.array([
    [0, 0, 6], [1, 0, 6], [2, 0, 7], [3, 0, 7], [4, 0, 6], [5, 0, 7],
    [0, 1, 8], [0, 1, 9], [1, 1, 9], [2, 1, 10],
    [5, 2, 11],
    [0, 3, 1], [2, 3, 4],
    [6, 0, 7],  # attribute-attribute triple: ignored
])
INTER = np.array([
    [0, 0, 1], [0, 1, 1], [0, 3, 1], [0, 5, 0], [0, 4, 0],
    [1, 2, 1], [1, 4, 1], [1, 0, 0],
    [2, 5, 1], [2, 1, 0],
    [3, 3, 0],  # user 3: no positive at all
])


def make_dataset() -> KGDataset:
    return KGDataset(name="toy", interactions=INTER, triples=KG, item_entity=np.arange(N_ITEMS),
                     n_users=N_USERS, n_items=N_ITEMS, n_entities=12, n_relations=4)


def make_model(seed: int = 0, **kw) -> HKRM:
    torch.manual_seed(seed)
    ds = make_dataset()
    split = Split(train=INTER, valid=INTER[:0], test=INTER[:0])
    kw.setdefault("min_coverage", 0.3)
    model = HKRM.build(ds, split, dim=8, **kw)
    with torch.no_grad():  # larger values than Xavier's so that every term matters
        for p in model.parameters():
            p.normal_(0, 0.7)
    return model


def test_registered():
    assert get_model_class("hkrm") is HKRM
    assert HKRM.ctr_output and HKRM.task_samplers == {"rec": "ctr"}


def test_attribute_fields_filter_and_bags():
    relations, ptr, rows, n_attr = attribute_fields(make_dataset(), min_coverage=0.3)
    assert relations == [0, 1]  # relation 2 covers 1/6 < 0.3, relation 3 has item tails
    assert n_attr == 5  # entities 6..10 (11 only occurs in the dropped field)
    nf = 2
    # item 0: genre {6}, author {8, 9}; item 3: genre {7}, no author
    assert sorted(rows[ptr[0 * nf + 0]:ptr[0 * nf + 1]] - N_ITEMS) == [0]
    assert sorted(rows[ptr[0 * nf + 1]:ptr[0 * nf + 2]] - N_ITEMS) == [2, 3]
    assert ptr[3 * nf + 1] == ptr[3 * nf + 2]
    assert attribute_fields(make_dataset(), min_coverage=0.1)[0] == [0, 1, 2]


def test_user_queries_cap_is_deterministic():
    q = user_queries(INTER, N_USERS, max_query=64)
    assert q.shape == (4, 3)
    assert q[0].tolist() == [0, 1, 3] and q[1].tolist() == [2, 4, -1]
    assert q[3].tolist() == [-1, -1, -1]
    capped = user_queries(INTER, N_USERS, max_query=2, seed=5)
    assert capped.shape == (4, 2)
    assert set(capped[0]) < {0, 1, 3}
    assert (capped == user_queries(INTER, N_USERS, max_query=2, seed=5)).all()


def test_distributions_sum_to_one_and_zero_on_masked():
    model = make_model()
    ts = model.item_side(torch.arange(N_ITEMS))
    p = masked_softmax(ts["logits"], ts["mask"])
    assert ts["mask"][:, 1].tolist() == [True, True, True, False, False, False]
    assert torch.allclose(p.sum(1), torch.ones(N_ITEMS))
    assert (p[~ts["mask"]] == 0).all() and (p[3:, 0] == 1).all()
    qs = model.query_side(torch.arange(N_USERS))
    pq = masked_softmax(qs["logits"], qs["mask"])
    assert torch.allclose(pq[:3].sum(1), torch.ones(3))
    assert qs["mask"][2].tolist() == [True, False]  # user 2's query {5} has no author
    assert pq[2].tolist() == [1.0, 0.0]
    assert (pq[3] == 0).all()  # empty query: no field


def explicit_score(model: HKRM, user: int, item: int) -> float:
    """Eq. 1-7 and 10 written out with Python loops over the query and the fields."""
    E, r, nf = model.entity.weight.detach(), model.relation.detach(), model.n_fields
    query = [int(i) for i in model.query_items[user] if i >= 0]

    def fields(e):
        out, mask = [], []
        for j in range(nf):
            b = e * nf + j
            vals = model.bag_rows[model.bag_ptr[b]:model.bag_ptr[b + 1]]
            out.append(E[vals].sum(0) if len(vals) else torch.zeros(model.dim))
            mask.append(len(vals) > 0)
        return out, mask

    def dist(o, mask, s):
        logit = [float(o[j] @ (r[j] * s)) for j in range(nf)]
        z = sum(math.exp(logit[j]) for j in range(nf) if mask[j])
        return torch.tensor([math.exp(logit[j]) / z if mask[j] else 0.0 for j in range(nf)])

    p = model.item_weight.detach()
    w = torch.softmax(torch.stack([p[i] / len(query) for i in query]), 0)
    s_q = sum(w[k] * E[i] for k, i in enumerate(query))
    per_item = [fields(i) for i in query]
    scale = 1.0 / len(query) if model.query_agg == "mean" else 1.0
    o_q = [sum(f[0][j] for f in per_item) * scale for j in range(nf)]
    m_q = [any(f[1][j] for f in per_item) for j in range(nf)]
    s_t = E[item]
    o_t, m_t = fields(item)
    with torch.no_grad():
        a_q = model.mlp(dist(o_q, m_q, s_q))
        a_t = model.mlp(dist(o_t, m_t, s_t))
    return float(s_q @ s_t + s_q @ a_t + a_q @ s_t + a_q @ a_t)


@pytest.mark.parametrize("query_agg", ["sum", "mean"])
def test_score_matches_explicit_equations(query_agg):
    model = make_model(query_agg=query_agg)
    users = torch.tensor([0, 0, 1, 2, 1])
    items = torch.tensor([5, 2, 0, 3, 1])
    got = model.score(users, items).detach()
    want = [explicit_score(model, int(u), int(i)) for u, i in zip(users, items, strict=True)]
    assert got.tolist() == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_padding_does_not_change_the_score():
    model = make_model()
    # user 2 (query {5}) sits in a batch padded to 3 query slots
    batch = model.score(torch.tensor([0, 2, 1]), torch.tensor([4, 0, 3])).detach()[1]
    single = make_model()
    single.query_items = single.query_items[:, :1].clone()  # no padding for user 2
    alone = single.score(torch.tensor([2]), torch.tensor([0])).detach()[0]
    assert float(batch) == pytest.approx(float(alone), abs=1e-6)


def test_score_all_equals_score_on_all_pairs():
    model = make_model()
    users = torch.arange(N_USERS)
    full = model.score_all(users)
    brute = torch.stack([model.score(torch.full((N_ITEMS,), int(u)), torch.arange(N_ITEMS))
                         for u in users])
    assert torch.allclose(full, brute, atol=1e-5)


def test_masked_kl_hand_computed():
    lp = torch.tensor([[math.log(0.2), math.log(0.8), 5.0]])
    lq = torch.tensor([[math.log(0.5), math.log(0.5), -3.0]])
    mask = torch.tensor([[True, True, False]])
    want = 0.2 * math.log(0.2 / 0.5) + 0.8 * math.log(0.8 / 0.5)
    assert float(masked_kl(lp, lq, mask)[0]) == pytest.approx(want, abs=1e-6)
    assert float(masked_kl(lp, lq, torch.zeros_like(mask))[0]) == 0.0


def test_kl_loss_signed_by_label_with_margin():
    model = make_model(kl_margin=0.5, kl_form="hinge")
    qs = {"logits": torch.log(torch.tensor([[0.2, 0.8], [0.2, 0.8], [0.9, 0.1]])),
          "mask": torch.ones(3, 2, dtype=torch.bool)}
    ts = {"logits": torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.1, 0.9]])),
          "mask": torch.ones(3, 2, dtype=torch.bool)}
    kl1 = 0.2 * math.log(0.2 / 0.5) + 0.8 * math.log(0.8 / 0.5)  # 0.1927 < margin
    kl3 = 0.9 * math.log(9) + 0.1 * math.log(1 / 9)  # 1.7578 > margin
    labels = torch.tensor([1.0, 0.0, 0.0])
    want = (kl1 + (0.5 - kl1) + max(0.0, 0.5 - kl3)) / 3
    assert model.kl_loss(qs, ts, labels).item() == pytest.approx(want, abs=1e-6)


def test_query_excludes_the_target_in_training():
    model = make_model()  # balanced_query=False: only the target leaves the query
    users, items = torch.tensor([0, 0, 1]), torch.tensor([1, 5, 2])
    q, valid = model._query_mask(users, items)
    assert q[valid[:, :3].nonzero(as_tuple=True)].tolist() == [0, 3, 0, 1, 3, 4]
    # the target's own query weight p_t gets no gradient from a positive row
    batch = {"users": torch.tensor([0]), "items": torch.tensor([1]), "labels": torch.ones(1)}
    model(batch, "rec").backward()
    g = model.item_weight.grad
    assert g[1] == 0 and g[0] != 0 and g[3] != 0
    # and the score seen in training equals scoring with the target removed from the data
    model.zero_grad()
    ref = make_model()
    ref.query_items[0] = torch.tensor([0, 3, -1])
    rel = (model.representation(model.query_side(users[:1], items[:1]))
           * model.representation(model.item_side(items[:1]))).sum(-1).detach()
    want = ref.score(users[:1], items[:1]).detach()
    assert float(rel[0]) == pytest.approx(float(want[0]), abs=1e-6)


def test_balanced_query_drops_one_item_from_negatives():
    model = make_model(balanced_query=True)
    torch.manual_seed(3)
    users = torch.tensor([0, 0, 0, 1, 3])
    items = torch.tensor([1, 5, 4, 2, 3])  # positive, negative, negative, positive, no query
    q, valid = model._query_mask(users, items)
    assert valid.sum(1).tolist() == [2, 2, 2, 1, 0]
    assert not (valid[0] & (q[0] == 1)).any()


def test_empty_query_scores_are_finite():
    model = make_model()
    s = model.score(torch.tensor([3, 3]), torch.tensor([0, 5]))
    assert torch.isfinite(s).all()
    loss = model({"users": torch.tensor([3, 2]), "items": torch.tensor([3, 5]),
                  "labels": torch.tensor([0.0, 1.0])}, "rec")
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("variant", ["full", "attr", "item", "wokl"])
def test_adam_steps_reduce_the_loss(variant):
    model = make_model(variant=variant, balanced_query=False)
    rows = torch.from_numpy(INTER)
    batch = {"users": rows[:, 0], "items": rows[:, 1], "labels": rows[:, 2].float()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = model(batch, "rec").item()
    for _ in range(30):
        opt.zero_grad()
        model(batch, "rec").backward()
        opt.step()
    assert model(batch, "rec").item() < 0.7 * first


def test_variants_use_the_right_duet_terms():
    full = make_model()
    users, items = torch.tensor([0, 1]), torch.tensor([2, 5])
    qs, ts = full.query_side(users), full.item_side(items)
    a_q = full.mlp(masked_softmax(qs["logits"], qs["mask"]))
    a_t = full.mlp(masked_softmax(ts["logits"], ts["mask"]))
    item = make_model(variant="item")
    attr = make_model(variant="attr")
    assert torch.allclose(item.score(users, items), (qs["s"] * ts["s"]).sum(-1), atol=1e-6)
    assert torch.allclose(attr.score(users, items), (a_q * a_t).sum(-1), atol=1e-6)
    assert make_model(variant="wokl").lambda_1 == 0.0 and item.lambda_1 == 0.0
    with pytest.raises(ConfigError):
        make_model(variant="deep")
    with pytest.raises(ConfigError):  # no field left for the attribute level
        HKRM(N_USERS, N_ITEMS, 0, [], np.zeros(1), np.zeros(0), np.full((N_USERS, 1), -1))
    assert HKRM(N_USERS, N_ITEMS, 0, [], np.zeros(1), np.zeros(0), np.full((N_USERS, 1), -1),
                variant="item").n_fields == 0


def test_explain_and_heatmap(tmp_path):
    from kgrec.plots import plot_preference_heatmap

    model = make_model()
    ex = model.explain(0, [2])[0]
    batch = model.explain(0, torch.tensor([1, 2, 3]))  # several items at once, as recommend asks
    assert [b["item"] for b in batch] == [1, 2, 3]
    assert batch[1]["item_distribution"] == pytest.approx(ex["item_distribution"])
    assert batch[1]["probability"] == pytest.approx(ex["probability"])
    assert ex["fields"] == [0, 1]
    assert sum(ex["user_distribution"]) == pytest.approx(1.0)
    assert sum(ex["item_distribution"]) == pytest.approx(1.0)
    assert ex["probability"] == pytest.approx(
        torch.sigmoid(model.score(torch.tensor([0]), torch.tensor([2]))[0]).item(), abs=1e-6)
    out = plot_preference_heatmap(ex["user_distribution"], ex["item_distribution"],
                                  ["genre", "author"], tmp_path / "fig" / "h.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "fig").iterdir()] == ["h.png"]
    with pytest.raises(ValueError):
        plot_preference_heatmap([1.0], [0.5, 0.5], ["a", "b"], tmp_path / "x.png")


def test_only_variants_with_attributes_explain():
    assert make_model().can_explain and not make_model(variant="item").can_explain


def test_masked_cross_entropy_hand_computed():
    lp = torch.tensor([[math.log(0.2), math.log(0.8), 5.0]])
    lq = torch.tensor([[math.log(0.5), math.log(0.5), -3.0]])
    mask = torch.tensor([[True, True, False]])
    want = -(0.2 * math.log(0.5) + 0.8 * math.log(0.5))
    assert float(masked_cross_entropy(lp, lq, mask)[0]) == pytest.approx(want, abs=1e-6)
    # KL = cross-entropy - entropy of the first distribution (the term Eq. 9 omits)
    ent = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert float(masked_kl(lp, lq, mask)[0]) == pytest.approx(want - ent, abs=1e-6)
    assert float(masked_cross_entropy(lp, lq, torch.zeros_like(mask))[0]) == 0.0


@pytest.mark.parametrize("form", ["hinge", "kl", "cross_entropy", "contrastive"])
def test_kl_forms_hand_computed(form):
    model = make_model(kl_margin=0.9, kl_form=form)
    qs = {"logits": torch.log(torch.tensor([[0.2, 0.8], [0.2, 0.8], [0.9, 0.1]])),
          "mask": torch.ones(3, 2, dtype=torch.bool)}
    ts = {"logits": torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.1, 0.9]])),
          "mask": torch.ones(3, 2, dtype=torch.bool)}
    labels = torch.tensor([1.0, 0.0, 0.0])
    kl = [0.2 * math.log(0.2 / 0.5) + 0.8 * math.log(0.8 / 0.5)] * 2
    kl.append(0.9 * math.log(9) + 0.1 * math.log(1 / 9))
    ce = [math.log(2), math.log(2), -(0.9 * math.log(0.1) + 0.1 * math.log(0.9))]
    d = ce if form in ("cross_entropy", "contrastive") else kl
    neg = form in ("hinge", "contrastive")
    want = (d[0] + (max(0.0, 0.9 - d[1]) + max(0.0, 0.9 - d[2])) * neg) / 3
    assert model.kl_loss(qs, ts, labels).item() == pytest.approx(want, abs=1e-6)


def _fit(model: HKRM, rows: np.ndarray, steps: int) -> HKRM:
    """``steps`` full-batch Adam steps (lr 0.05) of the rec loss on labelled ``rows``."""
    rows = torch.from_numpy(rows)
    batch = {"users": rows[:, 0], "items": rows[:, 1], "labels": rows[:, 2].float()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        model(batch, "rec").backward()
        opt.step()
    return model


def _trained(steps: int = 15, seed: int = 0, **kw) -> HKRM:
    return _fit(make_model(seed=seed, **kw), INTER, steps)


@pytest.mark.parametrize("arg, value", [
    ("kl_form", "kl"), ("kl_form", "hinge"), ("kl_form", "contrastive"),
    ("l2_scope", "eq12"), ("query_agg", "mean"), ("temperature", 3.0), ("kl_margin", 3.0),
    ("lambda_1", 0.3), ("lambda_2", 0.1), ("field_agg", "mean"),
])
def test_every_hyper_parameter_changes_training(arg, value):
    common = {"lambda_2": 1e-2, "kl_form": "hinge" if arg == "kl_margin" else "cross_entropy"}
    base = _trained(**common)
    other = _trained(**{**common, arg: value})
    moved = (base.entity.weight - other.entity.weight).abs().max().item()
    assert moved > 1e-4


def test_l2_scope_eq12_divides_by_the_training_rows():
    table, eq12 = make_model(), make_model(l2_scope="eq12")
    assert eq12.n_train == len(INTER)
    assert eq12.l2().item() == pytest.approx(table.l2().item() / len(INTER), rel=1e-6)
    for bad in ({"kl_form": "js"}, {"l2_scope": "rows"}, {"n_train": 0}):
        with pytest.raises(ConfigError):
            make_model(**bad)


def planted_field_data(seed: int = 0, n_users: int = 60, n_items: int = 40, n_fields: int = 3,
                       n_values: int = 4, noise: float = 0.15) -> tuple[KGDataset, Split]:
    """Every item has a value in each of ``n_fields`` fields and one *important* field k_t;
    every user a favourite field f_u; the label is ``k_t == f_u`` flipped with probability
    ``noise``. 70% of the (user, item) pairs train, the rest validate."""
    rng = np.random.default_rng(seed)
    k, f = rng.integers(0, n_fields, n_items), rng.integers(0, n_fields, n_users)
    items, fields = np.meshgrid(np.arange(n_items), np.arange(n_fields), indexing="ij")
    values = n_items + fields * n_values + rng.integers(0, n_values, fields.shape)
    kg = np.stack([items.ravel(), fields.ravel(), values.ravel()], 1)
    u, t = (a.ravel() for a in np.meshgrid(np.arange(n_users), np.arange(n_items),
                                           indexing="ij"))
    y = (k[t] == f[u]) ^ (rng.random(len(u)) < noise)
    rows = np.stack([u, t, y.astype(np.int64)], 1)[rng.permutation(len(u))]
    ds = KGDataset(name="planted", interactions=rows, triples=kg,
                   item_entity=np.arange(n_items), n_users=n_users, n_items=n_items,
                   n_entities=n_items + n_fields * n_values, n_relations=n_fields)
    cut = int(0.7 * len(rows))
    return ds, Split(train=rows[:cut], valid=rows[cut:], test=rows[:0])


def _zeroing_effect(steps: int = 60, **kw) -> tuple[float, float, float]:
    """Train on :func:`planted_field_data`; return validation AUC, the AUC with every
    proximity logit set to 0 (uniform P(A|q), P_hat(A|t) over each side's fields), and the
    mean |score change| in units of the scores' std."""
    from kgrec.evaluation.ctr import auc

    ds, split = planted_field_data()
    torch.manual_seed(0)
    model = _fit(HKRM.build(ds, split, dim=8, **kw), split.train, steps)
    valid = torch.from_numpy(split.valid)
    with torch.no_grad():
        s = model.score(valid[:, 0], valid[:, 1])
        model.proximity_logits = lambda o, s_: torch.zeros(o.shape[:2], dtype=o.dtype)
        z = model.score(valid[:, 0], valid[:, 1])
    y = split.valid[:, 2]
    return auc(y, s.numpy()), auc(y, z.numpy()), float((s - z).abs().mean() / s.std())


def test_trained_proximities_change_scores_and_the_metric():
    # the chosen reading (literal sum of Eq. 4, Eq. 9 as written): the mechanism acts
    auc_, zeroed, moved = _zeroing_effect(query_agg="sum", kl_form="cross_entropy")
    assert auc_ > 0.75
    assert moved > 0.2
    assert zeroed < auc_ - 0.01
    # under the mean of Eq. 4 the logits stay small and zeroing them hardly matters
    auc_m, zeroed_m, moved_m = _zeroing_effect(query_agg="mean")
    assert moved_m < moved / 2 and abs(zeroed_m - auc_m) < (auc_ - zeroed) / 2
