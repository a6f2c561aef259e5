"""TransE / TransH / TransR: projections, distances, ranking and the margin loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kgrec.data.dataset import KGDataset
from kgrec.data.splits import split_triples
from kgrec.errors import ConfigError
from kgrec.models import get_model_class
from kgrec.models.transe import TransE, relation_head_prob, transe_distance
from kgrec.models.transh import TransH, transh_project
from kgrec.models.transr import TransR, transr_project

torch.set_num_threads(1)


def test_transe_distance_by_hand():
    h, r, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 0.0]])
    assert transe_distance(h, r, t, 1).item() == pytest.approx(2.5)
    assert transe_distance(h, r, t, 2).item() == pytest.approx(math.sqrt(1.5**2 + 1.0))


def test_transh_projection_by_hand():
    # 3-D: normal (0, 0, 2) is normalised to e_z, so the z component is removed.
    e3 = transh_project(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 0.0, 2.0]))
    assert torch.allclose(e3, torch.tensor([1.0, 2.0, 0.0]))
    # 2-D: w = (1, 1)/sqrt 2, w.e = 3/sqrt 2, (w.e) w = (1.5, 1.5).
    e2 = transh_project(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
    assert torch.allclose(e2, torch.tensor([[0.5, -0.5]]))
    # the projection lies on the hyperplane and is idempotent
    e, w = torch.randn(5, 4), torch.randn(5, 4)
    p = transh_project(e, w)
    assert torch.allclose((p * w).sum(-1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(transh_project(p, w), p, atol=1e-5)


def test_transr_projection_by_hand():
    e = torch.tensor([[1.0, 2.0]])
    M = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]])
    assert torch.allclose(transr_project(e, M), torch.tensor([[1.0, 4.0, 1.0]]))


def _set(emb, rows):
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(rows, dtype=torch.float32))


def test_transh_score_by_hand():
    # h = (2, 1), t = (0, 3), w_r = (1, 1), d_r = (1, 0):
    # h_perp = (0.5, -0.5), t_perp = (-1.5, 1.5), h_perp + d_r - t_perp = (3, -2) -> L1 5.
    m = TransH(n_entities=3, n_relations=1, dim=2)
    _set(m.entity_emb, [[2.0, 1.0], [0.0, 3.0], [0.0, 0.0]])
    _set(m.relation_emb, [[1.0, 0.0]])
    _set(m.norm_emb, [[1.0, 1.0]])
    h, r, t = torch.tensor([0]), torch.tensor([0]), torch.tensor([1])
    assert m.triple_distance(h, r, t).item() == pytest.approx(5.0)
    assert m.score_tails(h, r)[0, 1].item() == pytest.approx(-5.0)
    assert m.score_heads(r, t)[0, 0].item() == pytest.approx(-5.0)
    # entity 2 = origin: h_perp + d_r - 0 = (1.5, -0.5) -> 2
    assert m.score_tails(h, r)[0, 2].item() == pytest.approx(-2.0)


@pytest.mark.parametrize("cls", [TransE, TransH, TransR])
@pytest.mark.parametrize("norm", [1, 2])
def test_score_tails_heads_match_loops(cls, norm):
    torch.manual_seed(0)
    kwargs = {"relation_dim": 3} if cls is TransR else {}
    m = cls(n_entities=7, n_relations=3, dim=4, norm=norm, **kwargs)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    h = torch.tensor([0, 3, 5, 1, 2, 6])
    r = torch.tensor([2, 0, 2, 1, 1, 0])
    t = torch.tensor([1, 1, 4, 6, 0, 2])
    st, sh = m.score_tails(h, r), m.score_heads(r, t)
    assert st.shape == sh.shape == (6, 7)
    for b in range(6):
        for e in range(7):
            et = torch.tensor([e])
            dt = m.triple_distance(h[b:b + 1], r[b:b + 1], et).item()
            dh = m.triple_distance(et, r[b:b + 1], t[b:b + 1]).item()
            assert st[b, e].item() == pytest.approx(-dt, abs=1e-5)
            assert sh[b, e].item() == pytest.approx(-dh, abs=1e-5)


def _batch():
    return {
        "heads": torch.tensor([0, 1, 2, 3]), "relations": torch.tensor([0, 1, 0, 1]),
        "tails": torch.tensor([4, 5, 6, 7]), "corrupt_heads": torch.tensor([5, 7, 1, 0]),
        "corrupt_tails": torch.tensor([2, 3, 0, 6]),
    }


@pytest.mark.parametrize("cls", [TransE, TransH, TransR])
def test_margin_loss_explicit(cls):
    torch.manual_seed(1)
    b = _batch()
    h, r, t, nh, nt = (b[k] for k in ("heads", "relations", "tails", "corrupt_heads",
                                      "corrupt_tails"))
    m = cls(n_entities=8, n_relations=2, dim=5, margin=2.0, soft_constraint=0.0,
            corrupt="both")
    pos = m.triple_distance(h, r, t)
    hinge_h = torch.relu(pos + 2.0 - m.triple_distance(nh, r, t))
    hinge_t = torch.relu(pos + 2.0 - m.triple_distance(h, r, nt))
    assert m(b, "kg").item() == pytest.approx(0.5 * (hinge_h + hinge_t).mean().item(), rel=1e-5)
    # "bern" with probability 1 / 0 corrupts only heads / only tails
    for prob, expected in ((1.0, hinge_h), (0.0, hinge_t)):
        mb = cls(n_entities=8, n_relations=2, dim=5, margin=2.0, soft_constraint=0.0,
                 corrupt="bern", head_prob=np.full(2, prob))
        mb.load_state_dict(m.state_dict())
        assert mb(b, "kg").item() == pytest.approx(expected.mean().item(), rel=1e-5)
    # uniform: each row uses one of the two corruptions
    mu = cls(n_entities=8, n_relations=2, dim=5, margin=2.0, soft_constraint=0.0)
    mu.load_state_dict(m.state_dict())
    lo = torch.minimum(hinge_h, hinge_t).mean().item()
    hi = torch.maximum(hinge_h, hinge_t).mean().item()
    assert lo - 1e-6 <= mu(b, "kg").item() <= hi + 1e-6


def test_soft_constraints_are_added():
    b = _batch()
    m = TransH(n_entities=8, n_relations=2, dim=5, corrupt="both", soft_constraint=0.0)
    with torch.no_grad():
        m.entity_emb.weight.mul_(3.0)  # norms 3 > 1: the norm penalty becomes active
    mc = TransH(n_entities=8, n_relations=2, dim=5, corrupt="both", soft_constraint=1.0)
    mc.load_state_dict(m.state_dict())
    assert mc(b, "kg").item() > m(b, "kg").item() + 1.0


def test_relation_head_prob_toy():
    # relation 0 is 1-to-N (tph 3, hpt 1), relation 1 is N-to-1 (tph 1, hpt 3)
    tri = np.array([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 7], [5, 1, 7], [6, 1, 7]])
    assert np.allclose(relation_head_prob(tri, 3), [0.75, 0.25, 0.5])


@pytest.mark.parametrize("name", ["transe", "transh", "transr"])
def test_adam_steps_reduce_loss(name):
    torch.manual_seed(0)
    ds = KGDataset(name="toy", interactions=np.zeros((0, 3)), triples=_toy_triples(),
                   item_entity=np.zeros(0), n_users=0, n_items=0, n_entities=12, n_relations=3)
    cls = get_model_class(name)
    assert cls.tasks == ("kg",) and cls.task_samplers == {"kg": "triples"}
    m = cls.build(ds, None, dim=8, corrupt="bern")
    assert not torch.allclose(m.head_prob, torch.full((3,), 0.5))
    tri = torch.from_numpy(ds.triples)
    g = torch.Generator().manual_seed(0)
    batch = {"heads": tri[:, 0], "relations": tri[:, 1], "tails": tri[:, 2],
             "corrupt_heads": torch.randint(0, 12, (len(tri),), generator=g),
             "corrupt_tails": torch.randint(0, 12, (len(tri),), generator=g)}
    m.corrupt = "both"
    before = m(batch, "kg").item()
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        m(batch, "kg").backward()
        opt.step()
    assert m(batch, "kg").item() < 0.7 * before


def _toy_triples():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, 12, 30), rng.integers(0, 3, 30), rng.integers(0, 12, 30)], 1)


def test_kg_models_have_no_user_item_scores():
    m = TransE(n_entities=4, n_relations=1, dim=3)
    with pytest.raises(NotImplementedError, match="kg protocol"):
        m.score_all(torch.tensor([0]))


def test_bad_arguments():
    with pytest.raises(ConfigError):
        TransH(n_entities=4, n_relations=1, norm=3)
    with pytest.raises(ConfigError):
        TransE(n_entities=4, n_relations=1, corrupt="sometimes")


def test_build_uses_kg_train_split_for_bern():
    tri = np.array([[0, 0, 1], [0, 0, 2], [0, 0, 3], [4, 1, 7], [5, 1, 7], [6, 1, 7]] * 2)
    ds = KGDataset(name="toy", interactions=np.zeros((0, 3)), triples=tri,
                   item_entity=np.zeros(0), n_users=0, n_items=0, n_entities=8, n_relations=2)
    ds.kg_split = split_triples(tri, (1.0, 0.0, 0.0))
    m = TransH.build(ds, None, corrupt="bern", dim=4)
    assert torch.allclose(m.head_prob, torch.tensor([0.75, 0.25]))
