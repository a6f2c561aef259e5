"""The presets of the issue-15 baselines (src/kgrec/presets/) train one epoch on small
data in their layout and write the metrics their protocols promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.config import load_config
from kgrec.data.registry import DATASETS
from kgrec.training.experiment import run

from .conftest import write_processed
from .test_reader_kgat import write as write_kgat

PRESET_DIR = Path(__file__).resolve().parents[1] / "src" / "kgrec" / "presets"
MODELS = ("ripplenet", "kgat", "ncf", "nfm", "widedeep", "enmf")
PRESETS = sorted(p for p in PRESET_DIR.glob("*.yaml") if p.stem.split("-")[0] in MODELS)


def test_every_new_model_has_a_preset():
    assert {p.stem.split("-")[0] for p in PRESETS} == set(MODELS)
    assert {"ripplenet-lastfm", "ripplenet-book", "kgat-lastfm", "kgat-book",
            "kgat-amazon-book", "kgat-yelp2018"} <= {p.stem for p in PRESETS}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_trains_one_epoch(preset, tmp_path):
    cfg = load_config(preset)
    over = ["train.epochs=1", "data.min_user_positives=0"]
    data_dir = tmp_path / "data"
    if cfg.data.layout == "kgat":
        write_kgat(data_dir / DATASETS[cfg.data.dataset].folder)
    else:
        assert cfg.data.dataset in DATASETS, f"{preset.name}: unregistered dataset"
        tiny = write_processed(tmp_path / "tiny")
        over += [f"data.dataset={tiny}", "data.layout=processed"]
    cfg = load_config(preset, over)
    m = run(cfg, tmp_path / "run", data_dir, progress=False)
    if "ctr" in cfg.eval.protocols:
        assert 0.0 <= m["test"]["auc"] <= 1.0
    if "topk" in cfg.eval.protocols:
        assert {f"recall@{k}" for k in cfg.eval.ks} <= set(m["topk"])
    assert m["epochs"] == 1 and (tmp_path / "run" / "model.pt").is_file()
