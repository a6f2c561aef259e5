"""Wide&Deep (Eq. 1-3) with the MKR paper's inputs against a hand-written form (its loss
and options are tested with NFM's in tests/test_nfm.py)."""

from __future__ import annotations

import pytest
import torch

from .test_nfm import BAGS, N_ITEMS, N_USERS, make

torch.set_num_threads(1)


def brute_widedeep(model, u: int, i: int) -> torch.Tensor:
    bag = BAGS[i] if model.use_kg else []
    m = sum((model.entity_emb.weight[e] / len(bag) for e in bag), torch.zeros(3, dtype=torch.float64))
    a = torch.cat([model.user_emb.weight[u], model.item_emb.weight[i], m])
    for layer in model.deep:
        if isinstance(layer, torch.nn.Linear):
            a = torch.relu(layer.weight @ a + layer.bias)  # Eq. 2
    wide = model.user_w.weight[u, 0] + model.item_w.weight[i, 0] + sum(
        (model.entity_w.weight[e, 0] / len(bag) for e in bag), torch.zeros((), dtype=torch.float64))
    return model.bias + wide + model.w_deep.weight[0] @ a  # Eq. 3


@pytest.mark.parametrize("use_kg", [True, False])
def test_widedeep_matches_its_definition(use_kg):
    model = make("widedeep", use_kg=use_kg)
    full = model.score_all(torch.arange(N_USERS))
    ref = torch.stack([torch.stack([brute_widedeep(model, u, i) for i in range(N_ITEMS)])
                       for u in range(N_USERS)])
    torch.testing.assert_close(full, ref)
