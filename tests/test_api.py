"""Presets in the package, the embedded Last.FM copy and the Python API (kgrec.train/load)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

import kgrec
from kgrec.data import embedded, load_dataset
from kgrec.errors import ConfigError, DataError, KGRecError
from kgrec.presets import PRESET_DIR, list_presets, resolve_config

from .conftest import REPO
from .conftest import run_cli as cli


def tiny_config(folder, **train) -> dict:
    return {"model": "mkr", "model_args": {"dim": 4, "n_low_layers": 1},
            "data": {"dataset": str(folder), "layout": "processed"},
            "train": {"epochs": 3, "batch_size": 32, "threads": 1, "lr": {"rec": 0.02, "kge": 0.01},
                      "patience": 5, **train},
            "eval": {"ks": [1, 5]}}


# ---- presets ------------------------------------------------------------------------------

def test_presets_ship_in_the_package():
    names = list_presets()
    assert "mkr-lastfm" in names and len(names) >= 30
    assert not list(REPO.glob("configs/*.yaml"))  # moved, not copied
    assert resolve_config("mkr-lastfm") == resolve_config("mkr-lastfm.yaml") == PRESET_DIR / "mkr-lastfm.yaml"


def test_an_existing_file_wins_over_a_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mkr-lastfm.yaml").write_text("model: mkr\n")
    assert resolve_config("mkr-lastfm.yaml").resolve() == (tmp_path / "mkr-lastfm.yaml").resolve()
    assert resolve_config("mkr-lastfm") == PRESET_DIR / "mkr-lastfm.yaml"  # no file of that name


def test_unknown_preset_lists_close_matches(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="did you mean mkr-lastfm"):
        resolve_config("mkr-lastf")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(monkeypatch, capsys, "train", "mkr-lasfm")
    assert code == 2 and "did you mean mkr-lastfm" in err and "Traceback" not in err
    code, out, _ = cli(monkeypatch, capsys, "presets")
    assert code == 0 and len(out.splitlines()) == len(list_presets())
    assert any(line.startswith("mkr-lastfm ") and "MKR" in line for line in out.splitlines())


# ---- embedded Last.FM ---------------------------------------------------------------------

def test_embedded_lastfm_is_the_published_processed_data(tmp_path):
    for f in ("ratings_final.txt", "kg_final.txt"):
        data = gzip.decompress((embedded.EMBEDDED_DIR / "lastfm" / f"{f}.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == embedded.SHA256["lastfm"][f]
    ds = load_dataset("lastfm", "auto", tmp_path / "empty")  # no data folder: the embedded copy
    assert "embedded" in ds.meta["source"]
    assert ds.stats()["users"] == 1872 and ds.stats()["items"] == 3846  # MKR Table 1
    assert (len(ds.interactions), len(ds.triples), ds.n_entities, ds.n_relations) == (42346, 15518, 9366, 60)
    assert load_dataset("lastfm", "processed", tmp_path / "empty").meta == ds.meta
    with pytest.raises(DataError, match="copy shipped with kgrec"):  # raw asked for explicitly
        load_dataset("lastfm", "raw", tmp_path / "empty")


def test_embedded_lastfm_equals_the_raw_layout(real_data):
    raw = load_dataset("lastfm", "raw", real_data)
    emb = embedded.load_embedded("lastfm")
    for f in ("interactions", "triples", "item_entity"):
        assert np.array_equal(getattr(raw, f), getattr(emb, f)), f
    for f in ("n_users", "n_items", "n_entities", "n_relations", "user_ids", "item_ids",
              "entity_ids", "relation_names"):
        assert getattr(raw, f) == getattr(emb, f), f
    assert "source" not in load_dataset("lastfm", "auto", real_data).meta  # the data folder still wins


def test_damaged_embedded_file_is_reported(monkeypatch):
    monkeypatch.setitem(embedded.SHA256, "lastfm", {**embedded.SHA256["lastfm"], "kg_final.txt": "0" * 64})
    with pytest.raises(DataError, match="does not match its sha256"):
        embedded.load_embedded("lastfm")


def test_main_job_runs_from_the_embedded_copy(tmp_path, monkeypatch, capsys):
    """No data folder, empty cache and home: `kgrec train mkr-lastfm` still runs."""
    for var, sub in (("KGREC_DATA", "empty-data"), ("KGREC_CACHE", "cache"), ("HOME", "home")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(monkeypatch, capsys, "train", "mkr-lastfm", "--set", "train.epochs=1",
                         "--set", "train.threads=1", "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "runs" / "mkr-lastfm-s0" / "metrics.json").read_text())
    assert m["epochs"] == 1 and m["dataset"] == "lastfm" and 0.0 <= m["test"]["auc"] <= 1.0
    assert "test auc=" in out
    assert not any((tmp_path / "empty-data").iterdir())


# ---- Python API ---------------------------------------------------------------------------

def test_train_returns_a_result_like_the_cli(tiny_processed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_config(tiny_processed)))
    r = kgrec.train(str(cfg_file), train__epochs=2, model_args__dim=8, set=["train.batch_size=16"],
                    seed=3, progress=False)
    # the default run folder is the CLI's
    assert r.run_dir == kgrec.api.default_run_dir(r.config) == tmp_path.joinpath("runs", "mkr-tiny-s3") \
        .relative_to(tmp_path)
    saved = json.loads((r.run_dir / "metrics.json").read_text())
    assert r.metrics["test"] == saved["test"] and r.metrics["seed"] == 3
    # every override reached training: 2 epochs, dim 8, batch 16
    assert r.config.train.epochs == 2 and r.metrics["epochs"] == 2 and len(r.history) == 2
    assert r.config.train.batch_size == 16 and r.config.model_args["dim"] == 8
    assert r.model.user_emb.weight.shape[1] == 8
    assert {"loss_rec", "loss_kge", "valid_auc"} <= set(r.history[0])


def test_overrides_are_validated_like_the_cli(tiny_processed, tmp_path):
    base = tiny_config(tiny_processed)
    with pytest.raises(ConfigError, match="train.epochs"):
        kgrec.train(base, out=tmp_path / "a", train__epochs=0)
    with pytest.raises(ConfigError, match="bogus"):
        kgrec.train(base, out=tmp_path / "b", train__bogus=1)
    with pytest.raises(ConfigError, match="cannot use a value"):
        kgrec.train(base, out=tmp_path / "c", train__epochs=object())
    with pytest.raises(ConfigError, match="no preset has that name"):
        kgrec.train("no-such-preset")


def test_override_values_keep_their_types(tiny_processed, tmp_path):
    r = kgrec.train(tiny_config(tiny_processed), out=tmp_path / "r", train__epochs=1,
                    train__lr={"rec": 0.01, "kge": 1e-6}, eval__ks=[2, 3], progress=False)
    assert r.config.train.lr == {"rec": 0.01, "kge": 1e-6}
    assert {"recall@2", "recall@3"} <= set(r.metrics["topk"])


def test_recommend_explain_plot_save_load(tiny_processed, tmp_path):
    cfg = tiny_config(tiny_processed)
    r = kgrec.train(cfg, out=tmp_path / "run", progress=False)
    recs = r.recommend(3, k=5)
    assert [x["rank"] for x in recs] == [1, 2, 3, 4, 5]
    seen = set(r.recommender.seen(3).tolist())
    assert not seen & {x["item_index"] for x in recs}
    # same answer as scoring every item by hand and masking the seen ones
    scores = r.model.score_all(torch.tensor([3]))[0].detach().numpy().copy()
    scores[list(seen)] = -np.inf
    assert [x["item_index"] for x in recs] == np.argsort(-scores, kind="stable")[:5].tolist()
    assert r.recommender is r.recommender  # built once
    with pytest.raises(KGRecError, match="no explanation"):
        r.explain(3, recs[0]["item"])

    fig = r.plot(tmp_path / "plots" / "curves.png")
    assert (tmp_path / "plots" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss_ax, valid_ax = fig.axes[:2]
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["kge", "rec"]
    valid_lines = {line.get_label(): line for line in valid_ax.get_lines()}
    assert "auc (selection)" in valid_lines and "selected epoch" in valid_lines
    assert list(valid_lines["auc (selection)"].get_ydata()) == [h["valid_auc"] for h in r.history]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]

    copy = r.save(tmp_path / "copy")
    for f in (r.run_dir).iterdir():
        assert (copy / f.name).read_bytes() == f.read_bytes()
    back = kgrec.load(copy)
    assert back.metrics == r.metrics and back.history == r.history
    assert back.config == r.config
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, back.model.state_dict()[k])
    assert back.recommend(3, k=5) == recs
    with pytest.raises(DataError, match="no model.pt"):
        kgrec.load(tmp_path / "nothing")


def test_explain_goes_through_the_recommender(tiny_processed, tmp_path):
    cfg = {**tiny_config(tiny_processed), "model": "hkrm", "model_args": {"dim": 4}}
    r = kgrec.train(cfg, out=tmp_path / "hkrm", train__epochs=1, progress=False)
    exp = r.explain(3, 5)
    assert exp == r.recommender.explain(3, 5) and "lines" in exp
    recs = r.recommend("3", k=2, explain=True)
    assert all("explanation" in x for x in recs)


def test_plot_tolerates_missing_and_renamed_fields():
    history = [{"epoch": 0, "loss_rec": 1.0, "seconds": 0.1},
               {"epoch": 1, "loss_rec": 0.5, "valid.auc": 0.7, "valid.acc": 0.6},
               {"epoch": 2, "loss_rec": float("nan"), "valid.auc": 0.8}]
    fig = kgrec.api.plot_training_curves(history, "auc")
    loss_ax, valid_ax = fig.axes[:2]
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2]  # the NaN epoch is left out
    labels = {line.get_label(): list(line.get_xdata()) for line in valid_ax.get_lines()}
    assert labels == {"auc (selection)": [2, 3], "acc": [2]}
    assert kgrec.api.plot_training_curves([], "auc").axes  # an empty history still draws


def test_import_kgrec_is_light():
    code = ("import sys, kgrec; assert 'torch' not in sys.modules; "
            "assert callable(kgrec.train) and callable(kgrec.load) and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_wheel_ships_presets_and_embedded_data(tmp_path):
    """A non-editable build carries the YAML presets and the embedded data (package data)."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr[-300:]}")
    (wheel,) = tmp_path.glob("kgrec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"kgrec/presets/{n}.yaml" for n in list_presets()} <= names
    for f in ("ratings_final.txt.gz", "kg_final.txt.gz", "ids.json.gz", "PROVENANCE.md", "LICENSE.md"):
        assert f"kgrec/data/embedded/lastfm/{f}" in names
