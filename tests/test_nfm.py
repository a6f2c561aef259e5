"""NFM (Eq. 4-7) against the definition over an explicit sparse feature vector, the loss
and options of NFM and Wide&Deep, and CTR floors on Last.FM (Wide&Deep's equations:
tests/test_widedeep.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.config import load_config
from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError
from kgrec.models import get_model_class
from kgrec.training.experiment import run

from .conftest import REPO

torch.set_num_threads(1)

N_USERS, N_ITEMS, N_ENT, N_REL = 4, 5, 9, 2
ITEM_ENTITY = np.array([0, 1, 2, 3, -1])
TRIPLES = np.array([[0, 0, 5], [0, 1, 6], [0, 0, 7], [1, 0, 5], [2, 1, 8], [6, 0, 0]])
PAIRS = np.array([[0, 0], [1, 1], [2, 2], [3, 4], [0, 3]])
BAGS = {0: [5, 6, 7], 1: [5], 2: [8], 3: [], 4: []}  # tails of each item's entity


def make(name: str, **kw):
    rows = np.c_[PAIRS, np.ones(len(PAIRS), np.int64)]
    ds = KGDataset("toy", rows, TRIPLES, ITEM_ENTITY, N_USERS, N_ITEMS, N_ENT, N_REL)
    split = Split(rows, rows[:0], rows[:0])
    torch.manual_seed(0)
    args = dict(dim=3, layers=[4, 2]) if name == "nfm" else dict(dim=3, layers=[5, 2])
    args.update(kw)
    model = get_model_class(name).build(ds, split, **args).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.7)
    model.eval()
    return model


def features(model, u: int, i: int) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """The non-zero features of x: (factor v_j, weight w_j, value x_j)."""
    bag = BAGS[i] if model.use_kg else []
    out = [(model.user_emb.weight[u], model.user_bias.weight[u, 0], 1.0),
           (model.item_emb.weight[i], model.item_bias.weight[i, 0], 1.0)]
    out += [(model.entity_emb.weight[e], model.entity_bias.weight[e, 0], 1.0 / len(bag))
            for e in bag]
    return out


def brute_nfm(model, u: int, i: int) -> torch.Tensor:
    x = features(model, u, i)
    f_bi = sum(x[j][2] * x[k][2] * x[j][0] * x[k][0]  # Eq. 4 as the sum over pairs j < k
               for j in range(len(x)) for k in range(j + 1, len(x)))
    z = f_bi
    for layer in model.hidden:
        if isinstance(layer, torch.nn.Linear):
            z = torch.relu(layer.weight @ z + layer.bias)  # Eq. 5
    return model.bias + sum(w * v for _, w, v in x) + model.h.weight[0] @ z  # Eq. 7


@pytest.mark.parametrize("use_kg", [True, False])
def test_nfm_matches_its_definition(use_kg):
    model = make("nfm", use_kg=use_kg)
    users, items = torch.tensor([0, 1, 3, 2, 0]), torch.tensor([0, 0, 4, 2, 1])
    ref = torch.stack([brute_nfm(model, u, i) for u, i in zip(users.tolist(), items.tolist(), strict=True)])
    torch.testing.assert_close(model.score(users, items), ref)
    full = model.score_all(torch.arange(N_USERS))
    torch.testing.assert_close(full, torch.stack([torch.stack(
        [brute_nfm(model, u, i) for i in range(N_ITEMS)]) for u in range(N_USERS)]))


@pytest.mark.parametrize("name", ["nfm", "widedeep"])
def test_loss_is_log_loss_plus_l2_and_options_change_it(name):
    model = make(name, l2=0.2)
    b = {"users": torch.tensor([0, 2, 3]), "items": torch.tensor([0, 1, 4]),
         "labels": torch.tensor([1.0, 0.0, 1.0])}
    logit, sq = model.logits(b["users"], b["items"])
    y = torch.sigmoid(logit)
    ref = -(b["labels"] * torch.log(y) + (1 - b["labels"]) * torch.log(1 - y)).mean() + 0.2 * sq.mean()
    torch.testing.assert_close(model(b, "rec"), ref)
    assert make(name, l2=0.0)(b, "rec") != model(b, "rec")
    model.train()  # dropout makes training stochastic
    drop = make(name, **({"dropout_bi": 0.5} if name == "nfm" else {"dropout": 0.5}))
    drop.train()
    torch.manual_seed(3)
    a = drop(b, "rec")
    torch.manual_seed(4)
    assert drop(b, "rec") != a
    with pytest.raises(ConfigError):
        make(name, layers=[0])
    with pytest.raises(ConfigError):
        make(name, sampler="triples")


@pytest.mark.slow
@pytest.mark.parametrize("name,floor", [("nfm", 0.75), ("widedeep", 0.75)])
def test_lastfm_ctr_quality_floor(real_data, tmp_path, name, floor):
    cfg = load_config(REPO / "src" / "kgrec" / "presets" / f"{name}-lastfm.yaml",
                      ["train.threads=1", "train.epochs=15", "eval.protocols=[ctr]"])
    m = run(cfg, tmp_path / "run", real_data, progress=False)
    assert m["test"]["auc"] >= floor
