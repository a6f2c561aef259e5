"""Fast paths of KTUP/TUP/TransX/BPRMF (issue 10, speed) against the direct forms they replace:
full ranking without per-pair broadcast, one embedding lookup per table per loss, projections
of differences, ``|x|.sum`` for the L1 norm. Values and gradients must agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kgrec.models.bprmf import BPRMF
from kgrec.models.ktup import KTUP
from kgrec.models.transe import TransE
from kgrec.models.transh import TransH, transh_project
from kgrec.models.transr import TransR
from kgrec.models.tup import TUP, translation_distances

from .test_tup_ktup import _perturb as perturb

torch.set_num_threads(1)


def _perturb(m, scale=0.5, seed=0):
    return perturb(m, scale, seed)


def _ktup(**kw):
    torch.manual_seed(0)
    ie = np.array([3, -1, 0, 5, -1, 2, 7, -1, 1, 4, -1])
    return _perturb(KTUP(n_users=9, n_items=11, n_entities=10, n_relations=7, dim=6,
                         item_entity=ie, **kw))


def _tup(**kw):
    torch.manual_seed(0)
    return _perturb(TUP(n_users=9, n_items=11, n_preferences=7, dim=6, **kw))


def _direct_distance(m, u, i):
    """Eq. 8-14 written out per pair: attention (softmax or argmax), normalised normal,
    ``||u_perp + p - i_perp||``."""
    prefs, normals = m.preference_tables()
    logits = (u + i) @ prefs.T
    a = (F.one_hot(logits.argmax(-1), prefs.shape[0]).to(u.dtype) if m.induction == "hard"
         else torch.softmax(logits, -1))
    w, p = a @ normals, a @ prefs
    diff = transh_project(u, w) + p - transh_project(i, w)
    return torch.linalg.vector_norm(diff, ord=m.norm, dim=-1)


@pytest.mark.parametrize("builder", [_ktup, _tup])
@pytest.mark.parametrize("induction", ["soft", "hard"])
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("chunk_elems", [1, 300, 1 << 22])  # 1 user, a few, all at once
def test_score_all_equals_direct_per_pair_form(builder, induction, norm, chunk_elems):
    m = builder(induction=induction, norm=norm, chunk_elems=chunk_elems).eval()
    users = torch.tensor([4, 0, 8, 2, 2, 7, 1])
    with torch.no_grad():
        fast = m.score_all(users)
        u = m.user_emb(users)[:, None, :].expand(-1, m.n_items, -1)
        i = m.all_items()[None].expand(len(users), -1, -1)
        slow = -_direct_distance(m, u, i)
        broadcast = -m.pair_distance(m.user_emb(users)[:, None, :], m.all_items()[None])
    assert fast.shape == (7, 11)
    assert torch.allclose(fast, slow, atol=1e-5, rtol=1e-5)
    assert torch.allclose(fast, broadcast, atol=1e-5, rtol=1e-5)
    assert torch.allclose(fast[3], fast[4], atol=1e-6)  # same user twice: same row


def test_translation_distances_handles_no_users_and_degenerate_normal():
    prefs, normals = torch.randn(3, 4), torch.zeros(3, 4)  # w = 0: F.normalize's eps applies
    users, items = torch.randn(2, 4), torch.randn(5, 4)
    d = translation_distances(users, items, prefs, normals, False, 1)
    a = torch.softmax((users[:, None] + items[None]) @ prefs.T, -1)
    ref = (users[:, None] - items[None] + a @ prefs).abs().sum(-1)  # no projection
    assert torch.allclose(d, ref, atol=1e-5)
    assert translation_distances(users[:0], items, prefs, normals, True, 1).shape == (0, 5)


def _grads(m):
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for k, p in m.named_parameters()}


def _rec_batch(n_users, n_items, b=13, seed=3):
    g = torch.Generator().manual_seed(seed)
    return {"users": torch.randint(n_users, (b,), generator=g),
            "pos_items": torch.randint(n_items, (b,), generator=g),
            "neg_items": torch.randint(n_items, (b,), generator=g)}


def _old_rec_loss(m, batch):
    """The former TUP/KTUP rec loss: separate lookups and ``pair_distance`` per item side."""
    u = m.user_emb(batch["users"])
    ip, ineg = m.item_vectors(batch["pos_items"]), m.item_vectors(batch["neg_items"])
    g_pos, g_neg = m.pair_distance(u, ip, m.training), m.pair_distance(u, ineg, m.training)
    prefs, normals = m.preference_tables()
    wn = F.normalize(normals, dim=-1)
    orth = ((wn * prefs).sum(-1).pow(2) / prefs.pow(2).sum(-1).clamp_min(1e-12)).mean()
    sq = u.pow(2).sum(-1) + ip.pow(2).sum(-1) + ineg.pow(2).sum(-1)
    return -F.logsigmoid(g_neg - g_pos).mean() + m.soft_constraint * orth + m.l2 * sq.mean()


@pytest.mark.parametrize("builder", [_ktup, _tup])
@pytest.mark.parametrize("induction", ["soft", "hard"])
def test_rec_loss_and_gradients_equal_former_form(builder, induction):
    """Training mode: hard induction draws its Gumbel noise for both sides in one call, the
    same numbers as two calls (torch's CPU generator fills tensors in order)."""
    m = builder(induction=induction, l2=0.1).train()
    batch = _rec_batch(m.n_users, m.n_items)
    weight = m.task_weights().get("rec", 1.0) if isinstance(m, KTUP) else 1.0
    torch.manual_seed(5)
    m.zero_grad()
    new = m(batch, task="rec")
    new.backward()
    g_new = _grads(m)
    torch.manual_seed(5)
    m.zero_grad()
    old = weight * _old_rec_loss(m, batch)
    old.backward()
    g_old = _grads(m)
    assert new.item() == pytest.approx(old.item(), rel=1e-6, abs=1e-6)
    for k in g_new:
        assert torch.allclose(g_new[k], g_old[k], atol=1e-6), k


def _kg_batch(n_entities, n_relations, b=17, seed=4):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randint(n, (b,), generator=g) for k, n in
            (("heads", n_entities), ("relations", n_relations), ("tails", n_entities),
             ("corrupt_heads", n_entities), ("corrupt_tails", n_entities))}


def _old_kg_loss(m, batch):
    """The former margin loss: ``f`` of each (head, tail) side from its own lookups, each
    entity projected on its own."""
    def f(h, r, t):
        x = m.project(m.entity_emb(h), r) + m.translation(r) - m.project(m.entity_emb(t), r)
        return torch.linalg.vector_norm(x, ord=m.norm, dim=-1)

    h, r, t = batch["heads"], batch["relations"], batch["tails"]
    nh, nt = batch["corrupt_heads"], batch["corrupt_tails"]
    pos = f(h, r, t)
    if m.corrupt == "both":
        hinge = 0.5 * (F.relu(pos + m.margin - f(nh, r, t)) + F.relu(pos + m.margin - f(h, r, nt)))
        ents = torch.cat([h, t, nh, nt])
    else:
        p = m.head_prob[r] if m.corrupt == "bern" else torch.full_like(pos, 0.5)
        head = torch.rand(pos.shape) < p
        nh2, nt2 = torch.where(head, nh, h), torch.where(head, t, nt)
        hinge = F.relu(pos + m.margin - f(nh2, r, nt2))
        ents = torch.cat([h, t, nh2, nt2])
    e = m.entity_emb(ents)
    reg = F.relu(e.pow(2).sum(-1) - 1).mean() + F.relu(m.translation(r).pow(2).sum(-1) - 1).mean()
    return hinge.mean() + m.soft_constraint * (reg + m.constraint(r))


@pytest.mark.parametrize("cls", [TransE, TransH, TransR, KTUP])
@pytest.mark.parametrize("corrupt", ["uniform", "bern", "both"])
@pytest.mark.parametrize("norm", [1, 2])
def test_kg_loss_and_gradients_equal_former_form(cls, corrupt, norm):
    torch.manual_seed(0)
    kw = {"n_users": 3, "n_items": 4} if cls is KTUP else {}
    m = _perturb(cls(n_entities=12, n_relations=5, dim=6, margin=2.0, norm=norm, corrupt=corrupt,
                     head_prob=np.linspace(0.1, 0.9, 5), **kw), scale=0.3)
    batch = _kg_batch(12, 5)
    weight = m.task_weights().get("kg", 1.0)
    torch.manual_seed(7)
    m.zero_grad()
    new = m(batch, task="kg")
    new.backward()
    g_new = _grads(m)
    torch.manual_seed(7)
    m.zero_grad()
    old = weight * (_old_kg_loss(m, batch) if not isinstance(m, TransR)
                    else _old_kg_loss(m, batch) + m.soft_constraint * F.relu(
                        m.project(m.entity_emb(torch.stack([batch[k] for k in (
                            "heads", "tails", "corrupt_heads", "corrupt_tails")])),
                            batch["relations"].expand(4, -1)).pow(2).sum(-1) - 1).mean())
    old.backward()
    g_old = _grads(m)
    assert new.item() == pytest.approx(old.item(), rel=1e-6, abs=1e-6)
    for k in g_new:
        assert torch.allclose(g_new[k], g_old[k], atol=1e-6), k
    # the distance of index triples (evaluation) is the same function
    h, r, t = batch["heads"], batch["relations"], batch["tails"]
    with torch.no_grad():
        direct = torch.linalg.vector_norm(m.project(m.entity_emb(h), r) + m.translation(r)
                                          - m.project(m.entity_emb(t), r), ord=norm, dim=-1)
        assert torch.allclose(m.triple_distance(h, r, t), direct, atol=1e-5)


def test_bprmf_loss_and_gradients_equal_separate_lookups():
    torch.manual_seed(0)
    m = BPRMF(n_users=5, n_items=7, dim=4, l2=0.3)
    batch = _rec_batch(5, 7)
    m(batch, task="rec").backward()
    g_new = _grads(m)
    m.zero_grad()
    u = m.user_emb(batch["users"])
    ip, ineg = m.item_emb(batch["pos_items"]), m.item_emb(batch["neg_items"])
    old = (-F.logsigmoid((u * ip).sum(-1) - (u * ineg).sum(-1)).mean()
           + 0.3 * (u.pow(2).sum(-1) + ip.pow(2).sum(-1) + ineg.pow(2).sum(-1)).mean())
    old.backward()
    for k, g in _grads(m).items():
        assert torch.allclose(g_new[k], g, atol=1e-7), k


def test_pairset_dense_table_equals_binary_search():
    from kgrec.data.samplers import PairSet

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 50, 400), rng.integers(0, 30, 400)
    dense, search = PairSet(a, b, 30), PairSet(a, b, 30, dense_limit=0)
    assert dense.table is not None and search.table is None
    qa = np.concatenate([rng.integers(-3, 60, 5000), a])  # unknown and out-of-range ids too
    qb = np.concatenate([rng.integers(0, 30, 5000), b])
    got = dense.contains(qa, qb)
    assert np.array_equal(got, search.contains(qa, qb))
    assert got[5000:].all() and not got[qa < 0].any()
    assert PairSet(a[:0], b[:0], 30).contains(qa, qb).sum() == 0
