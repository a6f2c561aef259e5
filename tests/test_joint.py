"""Joint training (loss weights that act), example budgets and the epoch-level KGE schedule."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from kgrec.config import load_config
from kgrec.data.samplers import make_sampler
from kgrec.errors import ConfigError
from kgrec.training.experiment import (
    LossWeightWarning,
    build_model,
    check_schedule,
    make_optimizers,
    prepare_data,
    run,
)
from kgrec.training.trainer import Trainer, _epoch_seed


def _cfg(folder, model="ktup", model_args=None, **train):
    args = {"ktup": {"dim": 8}, "mkr": {"dim": 4, "n_low_layers": 1}}[model]
    raw = {
        "model": model,
        "model_args": {**args, **(model_args or {})},
        "data": {"dataset": str(folder), "layout": "processed"},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "patience": 10, "threads": 1,
                  "monitor": "valid.auc", **train},
        "eval": {"protocols": ["ctr"]},
        "seed": 3,
    }
    return load_config(raw=raw)


def _trainer(cfg):
    dataset, split = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset, split)
    samplers = {t: make_sampler(model.task_samplers[t], dataset, split, cfg.train.batch_size,
                                **model.sampler_defaults(t)) for t in model.tasks}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossWeightWarning)
        opts = make_optimizers(cfg, model)
    return Trainer(model, samplers, opts, check_schedule(cfg, model), validate=dict,
                   monitor="auc", epochs=cfg.train.epochs, patience=10, seed=cfg.seed,
                   progress=False, joint=cfg.train.joint, kge_interval=cfg.train.kge_interval,
                   max_examples=cfg.train.max_examples)


def _params_after_training(cfg) -> torch.Tensor:
    tr = _trainer(cfg)
    for epoch in range(cfg.train.epochs):
        tr.train_epoch(epoch)
    return torch.cat([p.detach().flatten() for p in tr.model.parameters()])


def _gap(a, b):
    return ((a - b).norm() / a.norm()).item()


def test_ktup_lambda_changes_training_only_in_joint_mode(tiny_processed):
    joint = {lam: _params_after_training(_cfg(tiny_processed, model_args={"joint_lambda": lam},
                                              joint=True)) for lam in (0.3, 0.7)}
    assert _gap(joint[0.3], joint[0.7]) > 0.02  # Eq. 21's lambda moves the trajectory (0.04)
    # with a separate Adam per task a constant factor on a loss is inert up to eps (5e-5)
    alt = {lam: _params_after_training(_cfg(tiny_processed, model_args={"joint_lambda": lam}))
           for lam in (0.3, 0.7)}
    assert _gap(alt[0.3], alt[0.7]) < 0.01 * _gap(joint[0.3], joint[0.7])


def test_mkr_lambda1_changes_training_in_joint_mode(tiny_processed):
    p = {w: _params_after_training(_cfg(tiny_processed, "mkr", {"kge_weight": w}, joint=True,
                                        lr=0.02)) for w in (0.1, 1.0)}
    assert _gap(p[0.1], p[1.0]) > 0.05


def test_joint_step_is_one_step_on_the_weighted_sum(tiny_processed):
    """The trainer's joint step equals one Adam step on lambda L_p + (1 - lambda) L_k (Eq. 21)
    computed by hand from the unweighted losses."""
    cfg = _cfg(tiny_processed, model_args={"joint_lambda": 0.3}, joint=True, epochs=1,
               max_examples={"rec": 1})
    tr = _trainer(cfg)
    ref_cfg = _cfg(tiny_processed, model_args={"joint_weighting": "steps"})
    ref = build_model(ref_cfg, *prepare_data(ref_cfg))
    ref.load_state_dict(tr.model.state_dict())
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    tr.train_epoch(0)  # stops after one step (budget of one rec example)
    assert tr.state.examples == {"rec": 32, "kg": 32}
    rec = next(tr.samplers["rec"].epoch(_epoch_seed(cfg.seed, 0)))
    kg = next(tr.samplers["kg"].epoch(_epoch_seed(cfg.seed, 0, 2)))
    torch.manual_seed(_epoch_seed(cfg.seed, 0, 1))
    (0.3 * ref(rec, task="rec") + 0.7 * ref(kg, task="kg")).backward()
    ref_opt.step()
    for a, b in zip(tr.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert tr.model.task_weights() == {"rec": 0.3, "kg": pytest.approx(0.7)}


def test_weight_that_cannot_act_warns(tiny_processed, tmp_path):
    cfg = _cfg(tiny_processed, model_args={"joint_lambda": 0.7})
    with pytest.warns(LossWeightWarning, match="cannot act"):
        make_optimizers(cfg, build_model(cfg, *prepare_data(cfg)))
    cfg = _cfg(tiny_processed, model_args={"joint_lambda": 0.7}, joint=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossWeightWarning)
        make_optimizers(cfg, build_model(cfg, *prepare_data(cfg)))


def test_joint_mode_refuses_options_that_cannot_apply(tiny_processed, tmp_path):
    with pytest.raises(ConfigError, match="one learning rate"):
        run(_cfg(tiny_processed, joint=True, lr={"rec": 0.01, "kg": 0.02}), tmp_path / "a",
            progress=False)
    with pytest.raises(ConfigError, match="train.schedule"):
        run(_cfg(tiny_processed, joint=True, schedule=[["rec", 2], ["kg", 1]]), tmp_path / "b",
            progress=False)
    with pytest.raises(ConfigError, match="kge_interval"):
        run(_cfg(tiny_processed, "mkr", kge_interval=2, schedule=[["rec", 2], ["kge", 1]]),
            tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="max_examples names task"):
        run(_cfg(tiny_processed, max_examples={"bogus": 5}), tmp_path / "d", progress=False)


def test_examples_are_counted_per_task_and_epoch(tiny_processed, tmp_path):
    cfg = _cfg(tiny_processed, "mkr", epochs=3, schedule=[["rec", 2], ["kge", 1]])
    m = run(cfg, tmp_path / "r", progress=False)
    _, split = prepare_data(cfg)
    n_rec = len(split.train)
    assert [h["examples_rec"] for h in m["history"]] == [n_rec, 2 * n_rec, 3 * n_rec]
    kge = [h["examples_kge"] for h in m["history"]]
    # one KGE batch of 32 after every two rec batches
    steps_rec = -(-n_rec // 32)
    assert kge[0] == 32 * (steps_rec // 2) and kge == [kge[0] * k for k in (1, 2, 3)]
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["examples"] == {"rec": 3 * n_rec, "kge": kge[-1]}


def test_max_examples_stops_training(tiny_processed, tmp_path):
    cfg = _cfg(tiny_processed, "mkr", epochs=50, max_examples={"rec": 1000},
               schedule=[["rec", 1], ["kge", 1]])
    m = run(cfg, tmp_path / "b", progress=False)
    assert 1000 <= m["examples"]["rec"] < 1000 + 32
    assert m["epochs"] < 50 and "valid_auc" in m["history"][-1]  # the cut epoch is validated


def test_kge_interval_runs_whole_kg_passes_every_t_epochs(tiny_processed, tmp_path):
    cfg = _cfg(tiny_processed, "mkr", epochs=5, kge_interval=2, batch_size=16)
    dataset, split = prepare_data(cfg)
    m = run(cfg, tmp_path / "k", progress=False)
    n_kg = len(dataset.triples)
    # KGE passes after epochs 0, 2 and 4
    assert [h["examples_kge"] for h in m["history"]] == [n_kg, n_kg, 2 * n_kg, 2 * n_kg, 3 * n_kg]
    assert [h["examples_rec"] for h in m["history"]] == [len(split.train) * k for k in range(1, 6)]
    tr = _trainer(cfg)
    steps = []
    orig = tr.model.forward
    tr.model.forward = lambda batch, task: steps.append(task) or orig(batch, task=task)
    tr.train_epoch(0)
    n_rec_steps = len(tr.samplers["rec"])
    assert steps == ["rec"] * n_rec_steps + ["kge"] * len(tr.samplers["kge"])
    steps.clear()
    tr.train_epoch(1)
    assert steps == ["rec"] * n_rec_steps


def test_lambda_as_step_share_must_match_the_schedule(tiny_processed):
    args = {"joint_lambda": 0.7, "joint_weighting": "steps"}
    cfg = _cfg(tiny_processed, model_args=args)
    model = build_model(cfg, *prepare_data(cfg))
    with pytest.warns(LossWeightWarning, match="shares of steps"):
        check_schedule(cfg, model)  # default schedule: one step each
    ok = _cfg(tiny_processed, model_args=args, schedule=[["rec", 7], ["kg", 3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossWeightWarning)
        assert check_schedule(ok, model) == [("rec", 7), ("kg", 3)]
