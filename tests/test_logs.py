"""Run logs: one flushed line per epoch on stderr off a terminal and in OUT/train.log,
OUT/history.csv, progress of preprocessing and KG evaluation, the summary line,
TensorBoard, and no second validation pass after training."""

from __future__ import annotations

import csv
import functools
import json
import logging
import subprocess
import sys
import types

import pytest

from kgrec import cli, logs
from kgrec.config import load_config
from kgrec.errors import ConfigError
from kgrec.training import experiment
from kgrec.training.experiment import evaluate, load_run, run
from kgrec.training.trainer import Trainer


def write_config(tmp_path, folder, epochs=3, protocols=("ctr", "topk"), **train):
    cfg = tmp_path / "c.yaml"
    extra = "".join(f", {k}: {v}" for k, v in train.items())
    cfg.write_text(
        "model: mkr\nmodel_args: {dim: 4, n_low_layers: 1}\n"
        f"data: {{dataset: {folder}, layout: processed}}\n"
        f"train: {{epochs: {epochs}, batch_size: 32, lr: {{rec: 0.02, kge: 0.01}}, threads: 1, "
        f"patience: 10{extra}}}\n"
        f"eval: {{protocols: [{', '.join(protocols)}], ks: [1, 5, 10]}}\n")
    return cfg


def epoch_lines(text: str) -> list[str]:
    """The messages of ``DATE TIME epoch E/N ...`` log lines."""
    return [line.split(" ", 2)[2] for line in text.splitlines()
            if line.split(" ", 3)[2:3] == ["epoch"]]


def test_train_off_a_terminal_logs_each_epoch(tiny_processed, tmp_path):
    cfg, out = write_config(tmp_path, tiny_processed), tmp_path / "run"
    with open(tmp_path / "stderr.txt", "w") as err:
        r = subprocess.run([sys.executable, "-m", "kgrec.cli", "train", str(cfg), "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=err, text=True, timeout=300)
    assert r.returncode == 0
    lines = epoch_lines((tmp_path / "stderr.txt").read_text())
    assert [line.split()[:2] for line in lines] == [["epoch", "1/3"], ["epoch", "2/3"],
                                                    ["epoch", "3/3"]]
    assert all("loss_rec=" in x and "loss_kge=" in x and "valid_auc=" in x and x.endswith("s")
               for x in lines)
    log = (out / "train.log").read_text()
    assert epoch_lines(log) == lines  # the same lines, appended to the run folder's log
    summary = r.stdout.strip().splitlines()[-1]
    assert "test auc=" in summary and "precision@10=" in summary and "ndcg@10=" in summary
    assert summary in log
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["epoch", "loss_rec", "loss_kge", "valid_auc", "valid_acc", "examples_rec",
                             "examples_kge", "seconds"]
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [float(row["loss_rec"]) for row in rows] == [h["loss_rec"] for h in history]
    assert [float(row["valid_auc"]) for row in rows] == [h["valid_auc"] for h in history]
    assert [int(row["examples_rec"]) for row in rows] == [h["examples_rec"] for h in history]


def test_each_epoch_line_is_on_disk_before_the_next_epoch(tiny_processed, tmp_path, monkeypatch):
    cfg, out = write_config(tmp_path, tiny_processed), tmp_path / "run"
    stderr_file = tmp_path / "stderr.txt"
    seen = []
    original = Trainer.train_epoch

    def train_epoch(self, epoch):  # read what another process would see so far
        seen.append((len(epoch_lines(stderr_file.read_text())),
                     len(epoch_lines((out / "train.log").read_text()))
                     if (out / "train.log").exists() else 0))
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    with open(stderr_file, "w") as err:
        monkeypatch.setattr(sys, "stderr", err)
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", str(cfg), "--out", str(out)])
    assert exc.value.code == 0
    assert seen == [(0, 0), (1, 1), (2, 2)]
    assert len(epoch_lines(stderr_file.read_text())) == 3


def test_quiet_keeps_stderr_silent_but_writes_train_log(tiny_processed, tmp_path, capsys):
    cfg, out = write_config(tmp_path, tiny_processed, epochs=2), tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.main(["train", str(cfg), "--out", str(out), "--quiet"])
    assert not epoch_lines(capsys.readouterr().err)
    assert len(epoch_lines((out / "train.log").read_text())) == 2


def test_tensorboard_missing_is_a_config_error(tiny_processed, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    cfg = write_config(tmp_path, tiny_processed, epochs=1)
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", str(cfg), "--out", str(tmp_path / "r"), "--set", "train.tensorboard=true"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: train.tensorboard is true but TensorBoard is not importable" in err
    with pytest.raises(ConfigError, match="train.tensorboard"):
        logs.tensorboard_writer(tmp_path)


def test_tensorboard_gets_each_epochs_scalars(tiny_processed, tmp_path, monkeypatch):
    written = []

    class Writer:
        def __init__(self, log_dir):
            written.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            written.append((tag, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed", None))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard",
                        types.SimpleNamespace(SummaryWriter=Writer))
    cfg = load_config(write_config(tmp_path, tiny_processed, epochs=2, protocols=("ctr",)),
                      ["train.tensorboard=true"])
    run(cfg, tmp_path / "r", progress=False)
    assert written[0] == ("dir", str(tmp_path / "r" / "tensorboard")) and written[-1][0] == "closed"
    assert {("loss/rec", 1), ("loss/kge", 2), ("valid/auc", 1), ("valid/acc", 2)} <= set(written)
    cfg = load_config(write_config(tmp_path, tiny_processed, epochs=2, protocols=("ctr",)))
    written.clear()
    run(cfg, tmp_path / "r2", progress=False)
    assert written == []  # off by default


def test_validation_is_not_repeated_after_training(tiny_processed, tmp_path, monkeypatch):
    calls = []

    def counting(model, dataset, split, cfg, stage, protocols=None):
        calls.append((stage, list(protocols)))
        return evaluate(model, dataset, split, cfg, stage, protocols)

    monkeypatch.setattr(experiment, "evaluate", counting)
    cfg = load_config(write_config(tmp_path, tiny_processed, epochs=4))  # monitor valid.auc
    m = run(cfg, tmp_path / "r", progress=False)
    # 4 validations of the monitored protocol, the uncovered one once, the test once
    assert calls == [("valid", ["ctr"])] * 4 + [("valid", ["topk"]), ("test", ["ctr", "topk"])]
    model, dataset, split, cfg2 = load_run(tmp_path / "r")
    fresh = evaluate(model, dataset, split, cfg2, "valid", ["ctr", "topk"])
    assert list(m["valid"]) == list(fresh)
    assert m["valid"] == pytest.approx(fresh)
    calls.clear()
    run(load_config(write_config(tmp_path, tiny_processed, epochs=2, protocols=("ctr",))),
        tmp_path / "r2", progress=False)
    assert calls == [("valid", ["ctr"])] * 2 + [("test", ["ctr"])]


def test_kg_evaluation_reports_progress(monkeypatch, caplog):
    import numpy as np
    import torch

    from kgrec.evaluation import kg

    class Scorer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def score_tails(self, h, r):
            return torch.zeros(len(h), 6)

        def score_heads(self, r, t):
            return torch.zeros(len(t), 6)

    monkeypatch.setattr(kg, "Progress", functools.partial(logs.Progress, every=0.0))
    triples = np.array([[0, 0, 1], [1, 0, 2], [2, 0, 3], [3, 0, 4], [4, 0, 5]])
    with caplog.at_level(logging.INFO, logger="kgrec"):
        kg.evaluate_kg(Scorer(), triples, triples, batch_size=2, desc="KG completion (test)")
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("KG completion (test): 4/10 queries (40%)") for m in msgs)
    assert msgs[-1].startswith("KG completion (test): 10/10 queries (100%)")


def test_preprocessing_reports_progress(real_data, tmp_path, monkeypatch, caplog):
    from kgrec.data import load_dataset

    monkeypatch.setenv("KGREC_CACHE", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="kgrec"):
        load_dataset("lastfm", "raw", real_data)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0].startswith("lastfm: preprocessing the raw files")
    assert any(m.startswith("lastfm: preprocessed in") and "1,872 users" in m for m in msgs)


def test_summary_line_has_every_protocols_headline():
    m = {"model": "ktup", "dataset": "lastfm", "seed": 0, "epochs": 4, "best_epoch": 3,
         "train_seconds": 1.5, "test": {},
         "topk": {"precision@10": 0.1, "recall@10": 0.2, "ndcg@10": 0.3, "hit@10": 0.4,
                  "f1@10": 0.5, "recall@20": 0.6},
         "kg": {"filtered": {"hits@10": 0.62, "mrr": 0.3, "mean_rank": 120.5, "hits@1": 0.1},
                "raw": {"hits@10": 0.5}}}
    line = logs.summary_line(m)
    assert line == ("ktup on lastfm (seed 0): test precision@10=0.1000 recall@10=0.2000 "
                    "ndcg@10=0.3000 hit@10=0.4000 kg.hits@10=0.6200 kg.mrr=0.3000 "
                    "kg.mean_rank=120.5000 | epochs 4 (best 3), 1.5s training")


def test_progress_bar_lines_only_for_long_loops(caplog):
    with caplog.at_level(logging.INFO, logger="kgrec"):
        list(logs.progress(range(5), 5, "short"))  # default: a line at most every 10 s
        list(logs.progress(range(3), 3, "long", "rows", every=0.0))
    msgs = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("short") for m in msgs)
    assert [m.split(" in ")[0] for m in msgs] == ["long: 1/3 rows (33%)", "long: 2/3 rows (67%)",
                                                  "long: 3/3 rows (100%)"]
