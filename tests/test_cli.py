"""The kgrec command line, run as a user would (subprocess, console script)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def kgrec(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "kgrec.cli", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def test_datasets_info_lastfm_table1(real_data):
    r = kgrec("datasets", "info", "lastfm", "--json", env={"KGREC_DATA": str(real_data)})
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["users"], s["items"], s["interactions"], s["triples"]) == (1872, 3846, 42346, 15518)


def test_train_then_recommend(tiny_processed, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: mkr\nmodel_args: {{dim: 4, n_low_layers: 1}}\n"
        f"data: {{dataset: {tiny_processed}, layout: processed}}\n"
        "train: {epochs: 3, batch_size: 32, lr: {rec: 0.02, kge: 0.01}, threads: 1}\n"
        "eval: {ks: [1, 5]}\n")
    out = tmp_path / "run"
    r = kgrec("train", cfg, "--out", out, "--seed", 4, "--set", "train.epochs=2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "test auc=" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["seed"] == 4 and m["epochs"] == 2 and {"valid", "test", "topk"} <= set(m)
    r = kgrec("recommend", out, "--user", 3, "-k", 5, "--explain", "--json")
    assert r.returncode == 0, r.stderr
    recs = json.loads(r.stdout)
    assert [x["rank"] for x in recs] == [1, 2, 3, 4, 5]
    assert all("explanation" in x for x in recs)
    # training and validation positives of user 3 are never recommended
    import numpy as np

    from kgrec.training.experiment import load_run

    _, _, split, _ = load_run(out)
    seen = np.concatenate([split.train, split.valid])
    seen = set(seen[(seen[:, 0] == 3) & (seen[:, 2] == 1), 1].tolist())
    assert not seen & {x["item_index"] for x in recs}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.yaml"], "config file not found"),
        (["train", "{cfg}", "--set", "train.epochs=0"], "train.epochs"),
        (["train", "{cfg}", "--set", "model=nope"], "unknown model 'nope'"),
        (["train", "{cfg}", "--set", "nonsense"], "--set expects key=value"),
        (["datasets", "info", "no-such-dataset"], "neither a known dataset"),
        (["recommend", "{run}", "--user", "zzz"], "checkpoint not found"),
    ],
)
def test_bad_options_give_clear_errors(tmp_path, monkeypatch, capsys, args, message):
    from kgrec.cli import main  # in-process: the same main() as the console script

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: mkr\ndata: {dataset: lastfm}\n")
    args = [a.format(cfg=cfg, run=tmp_path / "norun") for a in args]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert message in err and "Traceback" not in err
