"""fm-ctr and cke-ctr (models/ctr_baselines.py): FM Eq. 1 and CKE's score read as logits, the
log loss and L2 terms against hand-written forms, the labelled-row sampler, and training on
the CTR protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.config import load_config
from kgrec.models import get_model_class
from kgrec.models.ctr_baselines import CKECTR, FMCTR
from kgrec.presets import PRESET_DIR
from kgrec.training.experiment import run

from .conftest import write_processed

torch.set_num_threads(1)

N_USERS, N_ITEMS, N_ENT = 4, 5, 9
ITEM_ENTITY = np.array([0, 1, 2, -1, 3])
TRIPLES = np.array([[0, 0, 5], [0, 1, 6], [1, 0, 5], [2, 0, 7], [3, 1, 8], [3, 0, 6]])
BATCH = {"users": torch.tensor([0, 1, 2, 3, 1]), "items": torch.tensor([0, 1, 3, 4, 2]),
         "labels": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])}


def bce(logit: torch.Tensor, y: float) -> torch.Tensor:
    p = torch.sigmoid(logit)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def randomise(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def make_fm(l2: float) -> FMCTR:
    from kgrec.models.fm import item_entity_bags

    indptr, ents = item_entity_bags(ITEM_ENTITY, TRIPLES)
    model = FMCTR(N_USERS, N_ITEMS, N_ENT, dim=3, l2=l2, bag_indptr=indptr,
                  bag_entities=ents).double()
    randomise(model)
    return model


def fm_brute(m: FMCTR, u: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FM Eq. 1 over the explicit feature list; and sum_j x_j^2 ||v_j||^2 of the pair."""
    a = ITEM_ENTITY[i]
    tails = sorted({t for h, _, t in TRIPLES if a >= 0 and h == a})
    feats = [(m.user_emb.weight[u], m.user_bias.weight[u, 0], 1.0),
             (m.item_emb.weight[i], m.item_bias.weight[i, 0], 1.0)]
    feats += [(m.entity_emb.weight[e], m.entity_bias.weight[e, 0], 1.0 / len(tails))
              for e in tails]
    y = m.bias + sum(w * x for _, w, x in feats)
    for j in range(len(feats)):
        for k in range(j + 1, len(feats)):
            y = y + (feats[j][0] @ feats[k][0]) * feats[j][2] * feats[k][2]
    sq = sum(x * x * (v @ v) for v, _, x in feats)
    return y, sq


def test_fm_ctr_logit_and_log_loss_match_eq1():
    model = make_fm(l2=0.3)
    pairs = list(zip(BATCH["users"].tolist(), BATCH["items"].tolist(), strict=True))
    ref = [fm_brute(model, u, i) for u, i in pairs]
    torch.testing.assert_close(model.score(BATCH["users"], BATCH["items"]),
                               torch.stack([y for y, _ in ref]))
    loss = sum(bce(y, lab) + 0.3 * sq for (y, sq), lab
               in zip(ref, BATCH["labels"].tolist(), strict=True)) / len(pairs)
    torch.testing.assert_close(model(BATCH, task="rec"), loss)


def test_cke_ctr_log_loss_and_kg_task():
    model = CKECTR(N_USERS, N_ITEMS, N_ENT, 2, item_entity=ITEM_ENTITY, dim=3, l2=0.2).double()
    randomise(model)
    total = torch.zeros((), dtype=torch.float64)
    for u, i, y in zip(*(BATCH[k].tolist() for k in ("users", "items", "labels")), strict=True):
        v = model.item_emb.weight[i] + (model.entity_emb.weight[ITEM_ENTITY[i]]
                                        if ITEM_ENTITY[i] >= 0 else 0.0)  # CKE eta_i + v_a(i)
        pu = model.user_emb.weight[u]
        total = total + bce(pu @ v, y) + 0.2 * (pu @ pu + v @ v)
    torch.testing.assert_close(model(BATCH, task="rec"), total / 5)
    kg = {"heads": torch.tensor([0, 1]), "relations": torch.tensor([0, 1]),
          "tails": torch.tensor([5, 6]), "corrupt_heads": torch.tensor([2, 3]),
          "corrupt_tails": torch.tensor([7, 8])}
    from kgrec.models.cke import CKE

    torch.manual_seed(3)  # the fair coin of uniform corruption (models/transe.py)
    mine = model(kg, task="kg")
    torch.manual_seed(3)
    torch.testing.assert_close(mine, CKE.forward(model, kg, task="kg"))


def test_models_are_registered_as_ctr_models_on_labelled_rows():
    for name in ("fm-ctr", "cke-ctr"):
        cls = get_model_class(name)
        assert cls.task_samplers["rec"] == "ctr" and cls.ctr_output
    with pytest.raises(ValueError):
        make_fm(0.0)(BATCH, task="kg")


@pytest.mark.parametrize("name", ["fm-ctr", "cke-ctr"])
def test_ctr_presets_learn_the_tiny_structure(name, tmp_path):
    tiny = write_processed(tmp_path / "tiny")
    cfg = load_config(PRESET_DIR / f"{name}-lastfm.yaml",
                      [f"data.dataset={tiny}", "data.layout=processed", "train.epochs=30",
                       "train.batch_size=32", "train.lr.rec=0.02" if name == "cke-ctr"
                       else "train.lr=0.02", "train.patience=30"])
    m = run(cfg, tmp_path / "run", progress=False)
    assert m["test"]["auc"] > 0.8 and m["test"]["acc"] > 0.6  # users like their cluster
