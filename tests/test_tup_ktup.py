"""TUP and KTUP: ST Gumbel-softmax, preference induction, translation, scoring, KTUP parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.data.dataset import KGDataset
from kgrec.errors import ConfigError
from kgrec.models import get_model_class
from kgrec.models.ktup import KTUP
from kgrec.models.transh import TransH, transh_project
from kgrec.models.tup import TUP, st_gumbel_softmax

torch.set_num_threads(1)

ITEM_ENTITY = np.array([3, -1, 0, 5, -1, 2])
TRIPLES = np.array([[3, 0, 1], [3, 1, 4], [6, 1, 3], [0, 2, 7], [5, 0, 6], [2, 2, 1]])


def _perturb(m, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return m


def _ktup(**kw):
    torch.manual_seed(0)
    kw = {"dim": 5, "item_entity": ITEM_ENTITY, "triples": TRIPLES,
          "relation_names": ["genre", "author", "series"], **kw}
    return _perturb(KTUP(n_users=4, n_items=6, n_entities=8, n_relations=3, **kw))


def _tup(**kw):
    torch.manual_seed(0)
    return _perturb(TUP(n_users=4, n_items=6, **{"n_preferences": 3, "dim": 5, **kw}))


# --- ST Gumbel-softmax -------------------------------------------------------------------

def test_st_gumbel_forward_is_exactly_one_hot():
    torch.manual_seed(0)
    logits = torch.randn(200, 7)
    for noise in (True, False):
        z = st_gumbel_softmax(logits, tau=0.5, noise=noise)
        assert set(z.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(z.sum(-1), torch.ones(200))
    assert torch.equal(st_gumbel_softmax(logits, noise=False).argmax(-1), logits.argmax(-1))


def test_st_gumbel_backward_is_softmax_gradient():
    torch.manual_seed(1)
    logits = torch.randn(4, 5, requires_grad=True)
    c = torch.randn(4, 5)
    (st_gumbel_softmax(logits, tau=0.7, noise=False) * c).sum().backward()
    ref = logits.detach().clone().requires_grad_(True)
    (F.softmax(ref / 0.7, -1) * c).sum().backward()
    assert logits.grad.abs().sum() > 0
    assert torch.allclose(logits.grad, ref.grad, atol=1e-6)


def test_st_gumbel_samples_follow_softmax():
    torch.manual_seed(2)
    logits = torch.tensor([1.0, 0.0, -1.0]).expand(20000, 3)
    freq = st_gumbel_softmax(logits).mean(0)
    assert torch.allclose(freq, F.softmax(logits[0], -1), atol=0.015)


# --- TUP ---------------------------------------------------------------------------------

def _g_explicit(u, i, p, w):
    return (transh_project(u, w) + p - transh_project(i, w)).abs().sum(-1)


@pytest.mark.parametrize("induction", ["hard", "soft"])
def test_tup_distance_explicit(induction):
    m = _tup(induction=induction).eval()
    P, W = m.pref_emb.weight, m.pref_norm_emb.weight
    for u in range(4):
        for i in range(6):
            ue, ie = m.user_emb.weight[u], m.item_emb.weight[i]
            phi = torch.stack([(ue + ie) @ P[k] for k in range(3)])  # Eq. 8
            if induction == "soft":
                a = F.softmax(phi, 0)  # Eq. 10
                p, w = (a[:, None] * P).sum(0), (a[:, None] * W).sum(0)  # Eq. 9, 14
            else:
                k = int(phi.argmax())
                p, w = P[k], W[k]
            got = m.score(torch.tensor([u]), torch.tensor([i])).item()
            assert got == pytest.approx(-_g_explicit(ue, ie, p, w).item(), abs=1e-5)


def test_tup_soft_attention_sums_to_one():
    m = _tup(induction="soft")
    rows = m.explain(2, [0, 1, 5])
    for row in rows:
        assert sum(row["weights"]) == pytest.approx(1.0, abs=1e-6)
        assert min(row["weights"]) > 0
        assert row["weight"] == max(row["weights"])
    assert [r["item"] for r in rows] == [0, 1, 5]


def test_tup_hard_training_uses_one_preference():
    m = _tup(induction="hard").train()
    u, i = m.user_emb.weight[:1].expand(50, -1), m.item_emb.weight[2:3].expand(50, -1)
    got = m.pair_distance(u, i, stochastic=True)
    P, W = m.pref_emb.weight, m.pref_norm_emb.weight
    per_k = torch.stack([_g_explicit(u[0], i[0], P[k], W[k]) for k in range(3)])
    assert torch.all((got[:, None] - per_k[None]).abs().min(1).values < 1e-5)
    got.sum().backward()  # gradients reach the logits through the ST estimator
    assert m.user_emb.weight.grad[0].abs().sum() > 0


@pytest.mark.parametrize("induction", ["hard", "soft"])
@pytest.mark.parametrize("builder", [_tup, _ktup])
def test_score_all_equals_pairwise_score(builder, induction):
    m = builder(induction=induction, chunk_elems=12).eval()  # forces chunks of 1 user
    users = torch.tensor([3, 0, 2, 1])
    full = m.score_all(users)
    assert full.shape == (4, 6)
    u = users.repeat_interleave(6)
    i = torch.arange(6).repeat(4)
    assert torch.allclose(full.reshape(-1), m.score(u, i), atol=1e-5)


@pytest.mark.parametrize("builder", [_tup, _ktup])
@pytest.mark.parametrize("induction", ["hard", "soft"])
def test_adam_steps_reduce_rec_loss(builder, induction):
    m = builder(induction=induction)
    batch = {"users": torch.tensor([0, 1, 2, 3, 0, 1]),
             "pos_items": torch.tensor([0, 1, 2, 3, 4, 5]),
             "neg_items": torch.tensor([5, 4, 3, 2, 1, 0])}
    m.eval()
    before = m(batch, "rec").item()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    m.train()
    for _ in range(40):
        opt.zero_grad()
        m(batch, "rec").backward()
        opt.step()
    m.eval()
    assert m(batch, "rec").item() < 0.8 * before


def test_bad_induction():
    with pytest.raises(ConfigError):
        TUP(n_users=2, n_items=2, induction="medium")


# --- KTUP --------------------------------------------------------------------------------

def test_ktup_item_enhancement():
    m = _ktup()
    items = torch.arange(6)
    got = m.item_vectors(items)
    for i, e in enumerate(ITEM_ENTITY):
        expect = m.item_emb.weight[i] + (m.entity_emb.weight[e] if e >= 0 else 0)
        assert torch.allclose(got[i], expect)
    # the recommendation loss fine-tunes exactly the aligned entities
    batch = {"users": torch.tensor([0, 1]), "pos_items": torch.tensor([0, 1]),
             "neg_items": torch.tensor([2, 4])}
    m(batch, "rec").backward()
    touched = set(torch.nonzero(m.entity_emb.weight.grad.abs().sum(1)).squeeze(1).tolist())
    assert touched == {3, 0}


def test_ktup_preferences_are_relations():
    m = _ktup(induction="soft")
    P, W = m.preference_tables()
    assert m.n_preferences == 3 and P.shape == (3, 5)
    assert torch.allclose(P, m.pref_emb.weight + m.relation_emb.weight)  # Eq. 19
    assert torch.allclose(W, m.pref_norm_emb.weight + m.norm_emb.weight)  # Eq. 20
    u, i = 1, 3
    ue, ie = m.user_emb.weight[u], m.item_emb.weight[i] + m.entity_emb.weight[ITEM_ENTITY[i]]
    a = F.softmax((ue + ie) @ P.T, 0)
    expect = -_g_explicit(ue, ie, a @ P, a @ W)
    assert m.score(torch.tensor([u]), torch.tensor([i])).item() == pytest.approx(expect.item(),
                                                                                 abs=1e-5)


def test_ktup_joint_weighting():
    rec = {"users": torch.tensor([0, 1]), "pos_items": torch.tensor([0, 3]),
           "neg_items": torch.tensor([2, 4])}
    kg = {"heads": torch.tensor([3, 0]), "relations": torch.tensor([0, 2]),
          "tails": torch.tensor([1, 7]), "corrupt_heads": torch.tensor([4, 2]),
          "corrupt_tails": torch.tensor([5, 6])}
    m = _ktup(joint_lambda=0.7, corrupt="both")
    raw = _ktup(joint_lambda=0.7, corrupt="both", joint_weighting="steps")
    raw.load_state_dict(m.state_dict())
    assert m(rec, "rec").item() == pytest.approx(0.7 * raw(rec, "rec").item(), rel=1e-5)
    assert m(kg, "kg").item() == pytest.approx(0.3 * raw(kg, "kg").item(), rel=1e-5)
    assert KTUP.tasks == ("rec", "kg") and KTUP.task_samplers == {"rec": "bpr", "kg": "triples"}
    with pytest.raises(ConfigError):
        _ktup(joint_lambda=1.5)


def test_ktup_kg_part_is_transh():
    m = _ktup()
    th = TransH(n_entities=8, n_relations=3, dim=5)
    th.load_state_dict({k: v for k, v in m.state_dict().items()
                        if k.split(".")[0] in ("entity_emb", "relation_emb", "norm_emb")})
    h, r, t = torch.tensor([3, 0, 6]), torch.tensor([0, 2, 1]), torch.tensor([1, 7, 3])
    assert torch.allclose(m.score_tails(h, r), th.score_tails(h, r))
    assert torch.allclose(m.score_heads(r, t), th.score_heads(r, t))
    for b in range(3):
        for e in range(8):
            d = m.triple_distance(h[b:b + 1], r[b:b + 1], torch.tensor([e])).item()
            assert m.score_tails(h, r)[b, e].item() == pytest.approx(-d, abs=1e-5)


def test_ktup_kg_adam_steps_reduce_loss():
    m = _ktup(corrupt="both")
    tri = torch.from_numpy(TRIPLES)
    kg = {"heads": tri[:, 0], "relations": tri[:, 1], "tails": tri[:, 2],
          "corrupt_heads": torch.tensor([7, 6, 5, 4, 3, 2]),
          "corrupt_tails": torch.tensor([2, 2, 0, 1, 7, 5])}
    before = m(kg, "kg").item()
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        m(kg, "kg").backward()
        opt.step()
    assert m(kg, "kg").item() < 0.7 * before


def test_ktup_explain_lists_relation_and_facts():
    m = _ktup(induction="hard")
    rows = m.explain(1, [0, 1])
    a, b = rows
    weights, chosen = m.preference_weights(1, [0, 1])
    assert a["relation"] == a["preference"] == int(chosen[0])
    assert a["relation_name"] == ["genre", "author", "series"][a["relation"]]
    assert a["entity"] == 3 and b["entity"] is None and b["facts"] == []
    expect = [tuple(x) for x in TRIPLES.tolist()
              if x[1] == a["relation"] and 3 in (x[0], x[2])]
    assert a["facts"] == expect
    assert m.facts(3, 1) == [(3, 1, 4), (6, 1, 3)]
    assert a["weight"] == pytest.approx(float(weights[0, a["relation"]]))


def test_ktup_pretrained_warm_start(tmp_path):
    bpr = {"user_emb.weight": torch.full((4, 5), 0.25), "item_emb.weight": torch.full((6, 5), 0.5),
           "extra.weight": torch.zeros(2)}
    transe = {"entity_emb.weight": torch.full((8, 5), -1.0),
              "relation_emb.weight": torch.full((3, 5), 2.0)}
    torch.save({"model": bpr, "config": {"model": "bprmf"}}, tmp_path / "bpr.pt")
    torch.save({"model": transe, "config": {"model": "transe"}}, tmp_path / "transe.pt")
    m = KTUP(n_users=4, n_items=6, n_entities=8, n_relations=3, dim=5,
             pretrained=[str(tmp_path / "bpr.pt"), str(tmp_path / "transe.pt")])
    for name, value in {**bpr, **transe}.items():
        if name != "extra.weight":
            assert torch.equal(dict(m.named_parameters())[name], value)
    assert sorted(m.loaded[str(tmp_path / "bpr.pt")]) == ["item_emb.weight", "user_emb.weight"]
    torch.save({"model": {"user_emb.weight": torch.zeros(9, 9)}}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="no tensor matches"):
        KTUP(n_users=4, n_items=6, n_entities=8, n_relations=3, dim=5,
             pretrained=str(tmp_path / "bad.pt"))
    with pytest.raises(ConfigError, match="not found"):
        KTUP(n_users=4, n_items=6, n_entities=8, n_relations=3, dim=5,
             pretrained=str(tmp_path / "missing.pt"))


def test_ktup_build_takes_alignment_and_train_triples():
    inter = np.array([[0, 0, 1], [1, 3, 1], [2, 5, 1], [3, 2, 1]])
    ds = KGDataset(name="toy", interactions=inter, triples=TRIPLES, item_entity=ITEM_ENTITY,
                   n_users=4, n_items=6, n_entities=8, n_relations=3,
                   relation_names=["genre", "author", "series"])
    ds.kg_split = {"train": TRIPLES[:4], "valid": TRIPLES[4:5], "test": TRIPLES[5:]}
    m = get_model_class("ktup").build(ds, None, dim=4, corrupt="bern")
    assert torch.equal(m.item_entity, torch.from_numpy(ITEM_ENTITY))
    assert np.array_equal(m.triples, TRIPLES[:4])
    assert m.relation_names == ["genre", "author", "series"]
    tup = get_model_class("tup").build(ds, None, dim=4, n_preferences=2, induction="hard")
    assert tup.score_all(torch.tensor([0, 1])).shape == (2, 6)


def test_tup_norm_constraint_is_the_authors_norm_loss_and_acts():
    """norm_constraint adds c * sum [||x||^2 - 1]_+ over the batch's user rows, its item rows
    (positive and negative) and every preference vector (the authors' normLoss, a sum), and
    a step under it shrinks the over-long rows that a step without it leaves longer."""
    batch = {"users": torch.tensor([0, 1, 2, 0]), "pos_items": torch.tensor([0, 1, 2, 3]),
             "neg_items": torch.tensor([5, 4, 3, 2])}
    plain, con = _tup(soft_constraint=0.0), _tup(soft_constraint=0.0, norm_constraint=0.5)
    plain.eval(), con.eval()

    def hinge(x):
        return sum(max(float(r @ r) - 1.0, 0.0) for r in x)

    with torch.no_grad():
        rows = (hinge(con.user_emb.weight[batch["users"]])
                + hinge(con.item_emb.weight[batch["pos_items"]])
                + hinge(con.item_emb.weight[batch["neg_items"]]) + hinge(con.pref_emb.weight))
        assert rows > 0  # the perturbed tables have rows outside the unit ball
        got = (con(batch, "rec") - plain(batch, "rec")).item()
    assert got == pytest.approx(0.5 * rows, rel=1e-5)
    for m in (plain, con):
        opt = torch.optim.SGD(m.parameters(), lr=0.05)
        for _ in range(20):
            opt.zero_grad()
            m(batch, "rec").backward()
            opt.step()
    size = [m.user_emb.weight[:3].norm(dim=-1).max().item() for m in (plain, con)]
    assert size[1] < size[0]
    with pytest.raises(ConfigError, match="norm_constraint"):
        _tup(norm_constraint=-1.0)


def test_ktup_preserve_warm_scores_starts_at_the_tup_scores(tmp_path):
    """preserve_warm_scores: KTUP warm-started from TUP + TransH scores every pair as the TUP
    checkpoint does (i_hat, p_hat, w_hat start as TUP's); a plain copy does not."""
    tup = _tup(n_preferences=3)
    transh = _perturb(TransH(n_entities=8, n_relations=3, dim=5), seed=1)
    torch.save({"model": tup.state_dict()}, tmp_path / "tup.pt")
    torch.save({"model": transh.state_dict()}, tmp_path / "transh.pt")
    paths = [str(tmp_path / "tup.pt"), str(tmp_path / "transh.pt")]
    users = torch.arange(4)
    want = tup.eval().score_all(users)
    kw = {"n_users": 4, "n_items": 6, "n_entities": 8, "n_relations": 3, "dim": 5,
          "item_entity": ITEM_ENTITY, "pretrained": paths}
    same = KTUP(preserve_warm_scores=True, **kw).eval()
    assert torch.allclose(same.score_all(users), want, atol=1e-5)
    assert torch.allclose(same.score(users, torch.tensor([0, 2, 3, 5])),
                          want[users, torch.tensor([0, 2, 3, 5])], atol=1e-5)
    copied = KTUP(**kw).eval()
    assert not torch.allclose(copied.score_all(users), want, atol=1e-2)
    with pytest.raises(ConfigError, match="preserve_warm_scores needs"):
        KTUP(preserve_warm_scores=True, **{**kw, "pretrained": paths[:1]})
    with pytest.raises(ConfigError, match="once"):  # pretrained, then init_from again
        same.finish_warm_start()
    # from BPRMF + TransH (Section 6.3's basic models): the items start as BPRMF's, the
    # preferences as random + r (no TUP tables to preserve)
    bpr = _perturb(get_model_class("bprmf")(n_users=4, n_items=6, dim=5), seed=2)
    torch.save({"model": bpr.state_dict()}, tmp_path / "bpr.pt")
    basic = KTUP(preserve_warm_scores=True, **{**kw, "pretrained": [str(tmp_path / "bpr.pt"),
                                                                    paths[1]]})
    assert torch.allclose(basic.all_items(), bpr.item_emb.weight, atol=1e-6)
    assert torch.allclose(basic.user_emb.weight, bpr.user_emb.weight)


# --- the authors' mixing (jTransUP getPreferences) -----------------------------------------

def _authors_g(u, i, P, W, logit_scale, hard):
    """The authors' getPreferences + projection_transH_pytorch, one pair at a time."""
    phi = torch.stack([logit_scale * ((u + i) @ P[k]) for k in range(len(P))])
    a = F.one_hot(phi.argmax(), len(P)).to(phi) if hard else phi  # raw weights, no softmax
    p = sum(a[k] * P[k] for k in range(len(P)))
    w = sum(a[k] * W[k] for k in range(len(P)))

    def proj(x):
        return x - (x * w).sum() * w  # w not normalised
    return (proj(u) + p - proj(i)).abs().sum()


@pytest.mark.parametrize("induction", ["hard", "soft"])
@pytest.mark.parametrize("builder", [_tup, _ktup])
def test_authors_mixing_against_their_code_pair_by_pair(builder, induction):
    m = builder(induction=induction, mixing="authors", chunk_elems=12).eval()
    if builder is _tup:
        P, W, scale = m.pref_emb.weight, m.pref_norm_emb.weight, 0.5
    else:  # (p + r) / 2 and (w_p + w_r) / 2, logits (u + i_hat)^T p_hat
        P = (m.pref_emb.weight + m.relation_emb.weight) / 2
        W = (m.pref_norm_emb.weight + m.norm_emb.weight) / 2
        scale = 1.0
    items = m.all_items()
    full = m.score_all(torch.arange(4))
    for u in range(4):
        for i in range(6):
            want = -_authors_g(m.user_emb.weight[u], items[i], P, W, scale, induction == "hard")
            got = m.score(torch.tensor([u]), torch.tensor([i])).item()
            assert got == pytest.approx(want.item(), abs=1e-5)
            assert full[u, i].item() == pytest.approx(want.item(), abs=1e-5)
    paper = builder(induction=induction).eval()  # same parameters, the paper's mixing
    assert not torch.allclose(paper.score_all(torch.arange(4)), full, atol=1e-3)
    with pytest.raises(ConfigError, match="mixing"):
        builder(mixing="code")


def test_authors_mixing_preserve_warm_scores_starts_at_the_tup_scores(tmp_path):
    """Under the authors' mixing the warm start keeps TUP's scores with p = sqrt2 p_TUP - r."""
    tup = _tup(n_preferences=3, mixing="authors")
    transh = _perturb(TransH(n_entities=8, n_relations=3, dim=5), seed=1)
    torch.save({"model": tup.state_dict()}, tmp_path / "tup.pt")
    torch.save({"model": transh.state_dict()}, tmp_path / "transh.pt")
    users = torch.arange(4)
    kw = {"n_users": 4, "n_items": 6, "n_entities": 8, "n_relations": 3, "dim": 5,
          "item_entity": ITEM_ENTITY, "mixing": "authors",
          "pretrained": [str(tmp_path / "tup.pt"), str(tmp_path / "transh.pt")]}
    same = KTUP(preserve_warm_scores=True, **kw).eval()
    assert torch.allclose(same.score_all(users), tup.eval().score_all(users), atol=1e-5)
    copied = KTUP(**kw).eval()
    assert not torch.allclose(copied.score_all(users), tup.score_all(users), atol=1e-2)
