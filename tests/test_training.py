"""Training loop: schedules, early stopping on validation, checkpoints, exact resume."""

import json

import pytest
import torch

from kgrec.config import load_config
from kgrec.errors import ConfigError, KGRecError
from kgrec.training.checkpoint import load_checkpoint
from kgrec.training.experiment import run
from kgrec.training.schedule import task_cycle
from kgrec.training.stopping import EarlyStopper


def tiny_config(folder, **train):
    raw = {
        "model": "mkr",
        "model_args": {"dim": 4, "n_low_layers": 1},
        "data": {"dataset": str(folder), "layout": "processed"},
        "train": {"epochs": 6, "batch_size": 32, "lr": {"rec": 0.02, "kge": 0.01},
                  "schedule": [["rec", 2], ["kge", 1]], "patience": 10, "threads": 1, **train},
        "eval": {"protocols": ["ctr", "topk"], "ks": [1, 5]},
        "seed": 1,
    }
    return load_config(raw=raw)


def test_task_cycle_follows_algorithm1():
    it = task_cycle([("rec", 3), ("kge", 1)], ("rec", "kge"))
    assert [next(it) for _ in range(8)] == ["rec"] * 3 + ["kge"] + ["rec"] * 3 + ["kge"]
    with pytest.raises(ConfigError, match="task 'bogus'"):
        next(task_cycle([("bogus", 1)], ("rec",)))


def test_early_stopper():
    s = EarlyStopper(patience=1)
    assert s.update(0.5, 0) and not s.update(0.4, 1) and not s.should_stop
    assert not s.update(0.5, 2) and s.should_stop and s.best_epoch == 0


def test_run_writes_metrics_and_learns(tiny_processed, tmp_path):
    m = run(tiny_config(tiny_processed, epochs=15), tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test"] == m["test"] and set(m["test"]) == {"auc", "acc"}
    assert {"precision@1", "recall@5"} <= set(m["topk"]) and m["kge_rmse"] > 0
    assert m["test"]["auc"] > 0.8  # cluster structure is easy to learn
    best = max(h["valid_auc"] for h in m["history"])
    assert m["valid"]["auc"] == pytest.approx(best)  # the validation-best state is kept
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert set(ckpt) == {"model", "config", "data_fingerprint"}


def test_resume_after_kill_gives_identical_metrics(tiny_processed, tmp_path):
    cfg = tiny_config(tiny_processed)
    full = run(cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "part", progress=False, stop_after=3)
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["epoch"] == 3
    resumed = run(cfg, tmp_path / "part", progress=False)
    for key in ("valid", "test", "topk", "kge_rmse", "epochs"):
        assert resumed[key] == full[key], key
    assert [h["loss_rec"] for h in resumed["history"]] == [h["loss_rec"] for h in full["history"]]


def test_resume_refuses_other_config(tiny_processed, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config(tiny_processed), tmp_path / "r", progress=False, stop_after=1)
    with pytest.raises(ConfigError, match="different config"):
        run(tiny_config(tiny_processed, epochs=7), tmp_path / "r", progress=False)


def test_corrupt_checkpoint_is_a_library_error(tmp_path):
    p = tmp_path / "checkpoint.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(KGRecError, match="not a readable kgrec checkpoint"):
        load_checkpoint(p)


def test_per_task_learning_rates(tiny_processed, tmp_path):
    cfg = tiny_config(tiny_processed, epochs=1)
    run(cfg, tmp_path / "lr", progress=False)
    state = torch.load(tmp_path / "lr" / "checkpoint.pt", weights_only=True)
    lrs = {t: o["param_groups"][0]["lr"] for t, o in state["optimizers"].items()}
    assert lrs == {"rec": 0.02, "kge": 0.01}


def test_eval_every_validates_on_schedule(tiny_processed, tmp_path):
    m = run(tiny_config(tiny_processed, epochs=7, eval_every=3), tmp_path / "e", progress=False)
    validated = [h["epoch"] for h in m["history"] if "valid_auc" in h]
    assert validated == [2, 5, 6] and m["best_epoch"] - 1 in validated


def test_device_option_is_checked(tiny_processed, tmp_path):
    with pytest.raises(ConfigError, match="train.device"):
        run(tiny_config(tiny_processed, epochs=1, device="bogus"), tmp_path / "d", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            run(tiny_config(tiny_processed, epochs=1, device="cuda"), tmp_path / "c",
                progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_matches_cpu(tiny_processed, tmp_path):
    cpu = run(tiny_config(tiny_processed, epochs=3), tmp_path / "cpu", progress=False)
    gpu = run(tiny_config(tiny_processed, epochs=3, device="cuda"), tmp_path / "gpu",
              progress=False)
    # same init and batches; kernels differ in rounding only
    assert gpu["test"]["auc"] == pytest.approx(cpu["test"]["auc"], abs=0.02)
    assert load_checkpoint(tmp_path / "gpu" / "model.pt")["model"]


def test_resume_accepts_checkpoint_from_before_a_new_option(tiny_processed, tmp_path):
    cfg = tiny_config(tiny_processed)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "r", progress=False, stop_after=2)
    ckpt_path = tmp_path / "r" / "checkpoint.pt"
    ckpt = load_checkpoint(ckpt_path)
    del ckpt["config"]["train"]["device"]  # as written before train.device existed
    torch.save(ckpt, ckpt_path)
    resumed = run(cfg, tmp_path / "r", progress=False)
    assert resumed["epochs"] == 6 and len(resumed["history"]) == 6
