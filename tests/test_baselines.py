"""KTUP's baselines: BPRMF, FM, CFKG, CKE and CoFM (share / reg)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kgrec.data.dataset import KGDataset
from kgrec.data.samplers import make_sampler
from kgrec.data.splits import per_user_split
from kgrec.errors import ConfigError
from kgrec.models import get_model_class
from kgrec.models.fm import item_entity_bags

torch.set_num_threads(1)

N_USERS, N_ITEMS, N_ENT, N_REL = 6, 8, 12, 3
# items 0..4 -> entities 0..4, items 5 and 7 share entity 5, item 6 has no entity
ITEM_ENTITY = np.array([0, 1, 2, 3, 4, 5, -1, 5])


def toy_dataset(seed: int = 0) -> KGDataset:
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, N_USERS, 40), rng.integers(0, N_ITEMS, 40)], 1),
                      axis=0)
    inter = np.column_stack([pairs, np.ones(len(pairs), dtype=np.int64)])
    trip = np.unique(np.stack([rng.integers(0, N_ENT, 30), rng.integers(0, N_REL, 30),
                               rng.integers(0, N_ENT, 30)], 1), axis=0)
    return KGDataset("toy", inter, trip, ITEM_ENTITY, N_USERS, N_ITEMS, N_ENT, N_REL)


MODELS = {
    "bprmf": ("bprmf", {}),
    "fm": ("fm", {"neighbours": "both"}),
    "fm-nokg": ("fm", {"use_kg": False}),
    "cfkg": ("cfkg", {}),
    "cfkg-bpr": ("cfkg", {"rec_loss": "bpr"}),
    "cke": ("cke", {"l2": 1e-3}),
    "cofm-share": ("cofm", {"variant": "share", "l2": 1e-3}),
    "cofm-reg": ("cofm", {"variant": "reg"}),
}


def build(key: str, ds: KGDataset | None = None, randomise: bool = True, **extra):
    ds = ds or toy_dataset()
    name, kwargs = MODELS[key]
    split = per_user_split(ds.interactions, (0.7, 0.1, 0.2), seed=0)
    torch.manual_seed(0)
    model = get_model_class(name).build(ds, split, dim=5, **{**kwargs, **extra})
    if randomise:  # non-zero biases, un-normalised rows, non-identity projections
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
    return model, ds, split


def batches(ds, split, task_sampler: str, seed: int = 0, batch_size: int = 16):
    return next(make_sampler(task_sampler, ds, split, batch_size).epoch(seed))


# --- BPR loss --------------------------------------------------------------------------------


def test_bpr_loss_matches_hand_formula():
    model, ds, split = build("bprmf", l2=0.01)
    b = batches(ds, split, "bpr")
    U, V = model.user_emb.weight.detach(), model.item_emb.weight.detach()
    total = 0.0
    for u, i, j in zip(b["users"].tolist(), b["pos_items"].tolist(), b["neg_items"].tolist(),
                       strict=True):
        x = float(U[u] @ V[i] - U[u] @ V[j])
        reg = float(U[u] @ U[u] + V[i] @ V[i] + V[j] @ V[j])
        total += -math.log(1.0 / (1.0 + math.exp(-x))) + 0.01 * reg
    expected = total / len(b["users"])
    assert model(b, "rec").item() == pytest.approx(expected, rel=1e-5)


def test_bprmf_state_dict_keys_for_warm_start():
    model, _, _ = build("bprmf")
    assert set(model.state_dict()) == {"user_emb.weight", "item_emb.weight"}
    cke, _, _ = build("cke")
    cke.load_state_dict(model.state_dict(), strict=False)
    assert torch.equal(cke.item_emb.weight, model.item_emb.weight)


# --- score_all == score on all pairs, for every model --------------------------------------


@pytest.mark.parametrize("key", list(MODELS))
def test_score_all_equals_score(key):
    model, _, _ = build(key)
    users = torch.arange(N_USERS)
    with torch.no_grad():
        full = model.score_all(users)
        brute = torch.stack([model.score(torch.full((N_ITEMS,), u), torch.arange(N_ITEMS))
                             for u in range(N_USERS)])
    assert full.shape == (N_USERS, N_ITEMS)
    torch.testing.assert_close(full, brute, rtol=1e-5, atol=1e-5)


# --- FM ----------------------------------------------------------------------------------------


def test_item_entity_bags():
    triples = np.array([[0, 0, 7], [0, 1, 8], [0, 0, 7],  # duplicate (0, 7)
                        [5, 2, 9],                       # entity 5: items 5 and 7
                        [10, 0, 1],                      # 1 is item 1's entity (a head side)
                        [11, 1, 11]])                    # not an item entity
    indptr, ents = item_entity_bags(ITEM_ENTITY, triples, "tails")
    bags = [ents[indptr[k]:indptr[k + 1]].tolist() for k in range(N_ITEMS)]
    assert bags == [[7, 8], [], [], [], [], [9], [], [9]]
    indptr, ents = item_entity_bags(ITEM_ENTITY, triples, "both")
    bags = [ents[indptr[k]:indptr[k + 1]].tolist() for k in range(N_ITEMS)]
    assert bags == [[7, 8], [10], [], [], [], [9], [], [9]]


def test_fm_decomposition_equals_explicit_double_sum():
    model, ds, _ = build("fm")
    # explicit feature vectors over [users | items | entities] and the FM of Eq. 1
    V = torch.cat([model.user_emb.weight, model.item_emb.weight,
                   model.entity_emb.weight]).detach().double()
    w = torch.cat([model.user_bias.weight, model.item_bias.weight,
                   model.entity_bias.weight]).detach().double().squeeze(-1)
    indptr, ents = item_entity_bags(ds.item_entity, ds.triples, "both")
    n_feat = len(V)
    with torch.no_grad():
        got = model.score_all(torch.arange(N_USERS)).double()
    for u in range(N_USERS):
        for i in range(N_ITEMS):
            x = torch.zeros(n_feat, dtype=torch.float64)
            x[u] = 1
            x[N_USERS + i] = 1
            bag = ents[indptr[i]:indptr[i + 1]]
            for e in bag:
                x[N_USERS + N_ITEMS + e] = 1.0 / len(bag)
            y = model.bias.item() + float(w @ x)
            nz = torch.nonzero(x).squeeze(1).tolist()
            for a in range(len(nz)):
                for b in range(a + 1, len(nz)):
                    j, k = nz[a], nz[b]
                    y += float(V[j] @ V[k]) * float(x[j] * x[k])
            assert got[u, i].item() == pytest.approx(y, rel=1e-4, abs=1e-4)


def test_fm_without_kg_is_biased_mf():
    model, _, _ = build("fm-nokg")
    assert not hasattr(model, "entity_emb")
    u, i = torch.tensor([1, 2]), torch.tensor([3, 6])
    expected = (model.bias + model.user_bias(u).squeeze(-1) + model.item_bias(i).squeeze(-1)
                + (model.user_emb(u) * model.item_emb(i)).sum(-1))
    torch.testing.assert_close(model.score(u, i), expected)


def test_fm_bags_change_scores():
    model, ds, _ = build("fm")
    i = 0  # item 0 has a KG bag in the toy data
    assert model.bag_indptr[i + 1] > model.bag_indptr[i]
    before = model.score(torch.tensor([0]), torch.tensor([i])).item()
    with torch.no_grad():
        model.entity_emb.weight.add_(1.0)
    assert model.score(torch.tensor([0]), torch.tensor([i])).item() != pytest.approx(before)


# --- joint models ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["cfkg", "cfkg-bpr", "cke", "cofm-share", "cofm-reg"])
def test_joint_losses_decrease(key):
    model, ds, split = build(key, randomise=False, corrupt="both")
    assert model.tasks == ("rec", "kg")
    rec = batches(ds, split, model.task_samplers["rec"])
    kg = batches(ds, split, model.task_samplers["kg"])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    start = {"rec": model(rec, "rec").item(), "kg": model(kg, "kg").item()}
    for _ in range(15):
        for task, b in (("rec", rec), ("kg", kg)):
            opt.zero_grad()
            loss = model(b, task)
            loss.backward()
            opt.step()
    end = {"rec": model(rec, "rec").item(), "kg": model(kg, "kg").item()}
    assert end["rec"] < start["rec"] and end["kg"] < start["kg"], (start, end)


def test_cfkg_items_are_entity_nodes():
    model, _, _ = build("cfkg")
    vec = model.item_vectors(torch.arange(N_ITEMS))
    torch.testing.assert_close(vec[2], model.entity_emb.weight[2])
    torch.testing.assert_close(vec[5], vec[7])  # two items, one entity
    torch.testing.assert_close(vec[6], model.item_emb.weight[6])  # no entity: own node
    # score(u, i) = -||u + buy - e_i||_1
    u = model.user_emb.weight[3]
    expected = -(u + model.buy_emb.weight[0] - model.entity_emb.weight[4]).abs().sum()
    torch.testing.assert_close(model.score(torch.tensor([3]), torch.tensor([4]))[0], expected)
    # a TransE checkpoint loads as is
    transe = get_model_class("transe")(n_entities=N_ENT, n_relations=N_REL, dim=5)
    missing, unexpected = model.load_state_dict(transe.state_dict(), strict=False)
    assert not unexpected


def test_cke_item_vector_adds_aligned_entity():
    model, _, _ = build("cke")
    vec = model.item_vectors(torch.arange(N_ITEMS))
    torch.testing.assert_close(vec[1], model.item_emb.weight[1] + model.entity_emb.weight[1])
    torch.testing.assert_close(vec[6], model.item_emb.weight[6])
    # the rec loss trains the aligned entities too
    _, ds, split = build("cke")
    b = batches(ds, split, "bpr")
    model(b, "rec").backward()
    touched = set(torch.cat([b["pos_items"], b["neg_items"]]).tolist())
    ents = {int(ITEM_ENTITY[i]) for i in touched if ITEM_ENTITY[i] >= 0}
    grads = model.entity_emb.weight.grad.abs().sum(1)
    assert all(grads[e] > 0 for e in ents)
    assert grads[[e for e in range(N_ENT) if e not in ents]].abs().sum() == 0


def test_cofm_share_and_reg():
    share, _, _ = build("cofm-share")
    v = share.item_vectors(torch.arange(N_ITEMS))
    torch.testing.assert_close(v[3], share.entity_emb.weight[3])
    torch.testing.assert_close(v[6], share.item_emb.weight[6])

    reg, ds, split = build("cofm-reg", reg_weight=0.5)
    v = reg.item_vectors(torch.arange(N_ITEMS))
    torch.testing.assert_close(v, reg.item_emb.weight)
    # the penalty: mean ||v_i - e_a(i)||^2 over the aligned items of the batch
    items = torch.tensor([0, 6, 7])
    pen = reg.alignment_penalty(items, reg.item_entity[items])
    d0 = (reg.item_emb.weight[0] - reg.entity_emb.weight[0]).pow(2).sum()
    d7 = (reg.item_emb.weight[7] - reg.entity_emb.weight[5]).pow(2).sum()
    torch.testing.assert_close(pen, (d0 + d7) / 2)
    # and it is part of both tasks' losses
    b = batches(ds, split, "bpr")
    with_reg = reg(b, "rec")
    reg.reg_weight = 0.0
    without = reg(b, "rec")
    assert with_reg > without
    with pytest.raises(ConfigError):
        build("cofm-reg", variant="both")


@pytest.mark.parametrize("key", ["cfkg", "cke", "cofm-share"])
def test_kg_ranking_equals_distances(key):
    model, _, _ = build(key)
    E, R = model.entity_emb.weight.detach(), model.relation_emb.weight.detach()

    def proj(e, r):  # TransR's e M_r for CKE, the identity for the TransE-based models
        return e @ model.rel_proj[r].detach() if key == "cke" else e

    h, r = [0, 3, 7], [0, 2, 1]
    with torch.no_grad():
        tails = model.score_tails(torch.tensor(h), torch.tensor(r))
        heads = model.score_heads(torch.tensor(r), torch.tensor(h))
    assert tails.shape == heads.shape == (3, N_ENT)
    for k in range(3):
        for e in range(N_ENT):
            dt = (proj(E[h[k]], r[k]) + R[r[k]] - proj(E[e], r[k])).abs().sum()
            dh = (proj(E[e], r[k]) + R[r[k]] - proj(E[h[k]], r[k])).abs().sum()
            assert tails[k, e].item() == pytest.approx(-dt.item(), rel=1e-4, abs=1e-4)
            assert heads[k, e].item() == pytest.approx(-dh.item(), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("key", list(MODELS))
def test_one_sampler_epoch_runs(key):
    model, ds, split = build(key, randomise=False)
    for task in model.tasks:
        sampler = make_sampler(model.task_samplers[task], ds, split, 7)
        for b in sampler.epoch(1):
            loss = model(b, task)
            assert loss.ndim == 0 and torch.isfinite(loss)
            loss.backward()
    with pytest.raises(ValueError):
        model({}, "nope")
