"""Data-parallel training with torch.distributed: 2 gloo processes on CPU for MKR (also
with joint steps), KTUP, JNSKR and ENMF on a tiny synthetic dataset.

(a) the parameters are identical on both ranks after every step; (b) without dropout,
2 processes at global batch B end with the parameters of 1 process at batch B; (c) the
metrics of a 2-process run equal those of evaluating its saved model in one process.
One spawn of two workers covers every model (process start-up dominates).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from kgrec.config import load_config
from kgrec.data.samplers import make_sampler
from kgrec.training import distributed as distr
from kgrec.training.experiment import (
    build_model,
    check_schedule,
    evaluate,
    load_run,
    make_optimizers,
    prepare_data,
    run,
)
from kgrec.training.trainer import Trainer

from .conftest import REPO, write_processed

MODELS = {
    # l2_weight > 0: MKR's lambda_2 term sums over the batch rows (batch_share, Model.batch_reduction)
    "mkr": ({"dim": 4, "n_low_layers": 1, "l2_weight": 0.05},
            {"lr": {"rec": 0.02, "kge": 0.01}, "schedule": [["rec", 2], ["kge", 1]]},
            {"protocols": ["ctr", "topk"], "ks": [1, 5]}, None),
    # corrupt "both": the default draws a head-or-tail coin per triple in forward (like dropout)
    "ktup": ({"dim": 8, "l2": 1e-3, "corrupt": "both"}, {"lr": 0.01, "schedule": [["rec", 1], ["kg", 1]]},
             {"protocols": ["topk", "kg"], "ks": [1, 5]}, [0.8, 0.1, 0.1]),
    # one optimiser over the sum of both tasks' losses (train.joint): one DDP forward per step
    "mkr-joint": ({"dim": 4, "n_low_layers": 1, "l2_weight": 0.0}, {"lr": 0.01, "joint": True},
                  {"protocols": ["ctr"]}, None),
    "jnskr": ({"dim": 8, "dropout": 0.0, "kg_dropout": 0.0, "c0": 5.0, "c1": 10.0},
              {"lr": 0.05, "optimizer": "adagrad", "batch_size": 9},
              {"protocols": ["topk"], "ks": [1, 5]}, None),
    "enmf": ({"dim": 8, "dropout": 0.0, "l2": 1e-3}, {"lr": 0.05, "optimizer": "adagrad", "batch_size": 7},
             {"protocols": ["topk"], "ks": [1, 5]}, None),
}
# samplers whose batches are rows with members (observed pairs, triples)
GROUPS = {"jnskr": [("items", "pos_index", ["pos_users"]),
                    ("heads", "kg_index", ["kg_relations", "kg_tails"])],
          "enmf": [("users", "pos_index", ["pos_items"])]}


def config(name: str, folder, epochs: int = 1, **train):
    args, tr, ev, kg_split = MODELS[name]
    monitor = "valid.auc" if "ctr" in ev["protocols"] else "valid.recall@5"
    return load_config(raw={
        "model": name.split("-")[0], "model_args": args,
        "data": {"dataset": str(folder), "layout": "processed", "kg_split": kg_split},
        "train": {"epochs": epochs, "batch_size": 33, "patience": 10, "threads": 1,
                  "monitor": monitor, **tr, **train},
        "eval": ev, "seed": 3,
    })


def trace_steps(cfg) -> list[torch.Tensor]:
    """Parameters (flattened) after every optimiser step of ``cfg``'s training."""
    dataset, split = prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset, split)
    samplers = {t: make_sampler(model.task_samplers[t], dataset, split, cfg.train.batch_size)
                for t in model.tasks}
    trainer = Trainer(model, samplers, make_optimizers(cfg, model), check_schedule(cfg, model),
                      validate=dict, monitor="x", epochs=cfg.train.epochs, patience=10,
                      seed=cfg.seed, progress=False, joint=cfg.train.joint)
    trace = []
    trainer.on_step = lambda task: trace.append(
        torch.cat([p.detach().flatten() for p in model.parameters()]).clone())
    trainer._wrap()
    for epoch in range(cfg.train.epochs):
        trainer.train_epoch(epoch)
    return trace


def _worker(rank: int, world: int, port: int, folder: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), KGREC_CACHE=f"{out}/cache{rank}")
    torch.set_num_threads(1)
    distr.init_from_env(torch.device("cpu"))
    try:
        for name in MODELS:
            torch.save(trace_steps(config(name, folder, epochs=2)), f"{out}/{name}-trace{rank}.pt")
            run(config(name, folder, epochs=2), f"{out}/{name}-run", progress=False)
        # resume under DDP: killed after epoch 1 (every rank), rerun
        cfg = config("mkr", folder, epochs=3)
        run(cfg, f"{out}/full", progress=False)
        with contextlib.suppress(KeyboardInterrupt):
            run(cfg, f"{out}/part", progress=False, stop_after=1)
        run(cfg, f"{out}/part", progress=False)
    finally:
        distr.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    folder = write_processed(root / "tiny")
    mp.spawn(_worker, args=(2, _free_port(), str(folder), str(root)), nprocs=2, join=True)
    return root, folder


@pytest.mark.parametrize("name", list(MODELS))
def test_ranks_agree_after_every_step(two_process, name):
    root, _ = two_process
    a, b = (torch.load(root / f"{name}-trace{r}.pt") for r in (0, 1))
    assert len(a) == len(b) > 5
    for s, (pa, pb) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(pa, pb), f"{name}: ranks differ after step {s}"
    assert not torch.equal(a[0], a[-1])  # the steps changed the parameters


@pytest.mark.parametrize("name", list(MODELS))
def test_two_processes_equal_one_process_at_the_same_global_batch(two_process, name):
    root, folder = two_process
    two = torch.load(root / f"{name}-trace0.pt")
    one = trace_steps(config(name, folder, epochs=2))
    assert len(one) == len(two)
    for s, (p1, p2) in enumerate(zip(one, two, strict=True)):
        torch.testing.assert_close(p2, p1, rtol=1e-4, atol=1e-5, msg=f"{name}: step {s}")


@pytest.mark.parametrize("name", list(MODELS))
def test_two_process_metrics_equal_single_process_evaluation(two_process, name):
    root, folder = two_process
    saved = json.loads((root / f"{name}-run" / "metrics.json").read_text())
    model, dataset, split, cfg = load_run(root / f"{name}-run")
    rec = [p for p in cfg.eval.protocols if p != "kg"]
    assert evaluate(model, dataset, split, cfg, "valid", rec) == pytest.approx(saved["valid"])
    test = evaluate(model, dataset, split, cfg, "test", rec)
    assert {k: v for k, v in test.items() if "@" not in k} == pytest.approx(saved["test"])
    if "topk" in cfg.eval.protocols:
        assert {k: v for k, v in test.items() if "@" in k} == pytest.approx(saved["topk"])
    assert saved["epochs"] == 2 and len(saved["history"]) == 2
    assert np.isfinite(saved["history"][-1][f"loss_{model.tasks[0]}"])


def test_resume_under_ddp_replays_the_uninterrupted_run(two_process):
    root, _ = two_process
    full, part = (json.loads((root / d / "metrics.json").read_text()) for d in ("full", "part"))
    def timeless(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert timeless(part["history"]) == [pytest.approx(h) for h in timeless(full["history"])]
    assert part["valid"] == pytest.approx(full["valid"])
    assert part["epochs"] == 3


def test_torchrun_runs_python_m_kgrec(tmp_path):
    """``torchrun --nproc-per-node 2 -m kgrec train``: rank 0 reports once and writes the run."""
    folder = write_processed(tmp_path / "tiny")
    cfg = tmp_path / "mkr.yaml"
    cfg.write_text(json.dumps({"model": "mkr", "model_args": {"dim": 4},
                               "data": {"dataset": str(folder), "layout": "processed"},
                               "train": {"epochs": 1, "threads": 1}, "eval": {"protocols": ["ctr"]}}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "KGREC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
         "127.0.0.1", "--master-port", str(_free_port()), "-m", "kgrec", "train", str(cfg),
         "--out", str(tmp_path / "run"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("mkr on") == 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == 1


def test_shards_partition_each_global_batch(tmp_path):
    """Every sampler kind: the ranks' slices of a batch are disjoint, cover it in order,
    and (JNSKR, ENMF) keep each observed pair and triple with its own item, head or user."""
    folder = write_processed(tmp_path / "tiny")
    for name in MODELS:
        cfg = config(name, folder)
        dataset, split = prepare_data(cfg)
        model = build_model(cfg, dataset, split)
        for task in model.tasks:
            sampler = make_sampler(model.task_samplers[task], dataset, split, 7)
            for batch in sampler.epoch(5):
                parts = [sampler.shard(batch, r, 3) for r in range(3)]
                assert sum(share for _, share in parts) == pytest.approx(1.0)
                if name not in GROUPS:
                    for k, v in batch.items():
                        assert torch.equal(torch.cat([p[k] for p, _ in parts]), v)
                    continue
                for key, index, fields in GROUPS[name]:
                    assert torch.equal(torch.cat([p[key] for p, _ in parts]), batch[key])
                    whole = sorted(zip(batch[key][batch[index]].tolist(),
                                       *(batch[f].tolist() for f in fields), strict=True))
                    pieces = sorted(row for p, _ in parts for row in zip(
                        p[key][p[index]].tolist(), *(p[f].tolist() for f in fields), strict=True))
                    assert pieces == whole
