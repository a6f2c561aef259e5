"""Every shipped preset (src/kgrec/presets) trains one epoch and writes the metrics its protocols promise.

Presets of registered datasets run on the small processed dataset of conftest; presets of
the KTUP and KGAT release layouts run on small files in those layouts, placed in a data
folder under the preset's dataset name (the name resolves to ``DATA_DIR/<name>``).
"""

from __future__ import annotations

import pytest

from kgrec.config import load_config
from kgrec.data.registry import DATASETS
from kgrec.presets import PRESET_DIR
from kgrec.training.experiment import run

from .conftest import write_processed
from .test_reader_kgat import write as write_kgat
from .test_reader_ktup import write_ktup

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))


def test_there_are_presets_for_every_paper():
    stems = {p.stem.split("-")[0] for p in PRESETS}
    assert {"mkr", "ktup", "tup", "transh", "bprmf", "jnskr", "hkrm"} <= stems


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_trains_one_epoch(preset, tmp_path):
    cfg = load_config(preset)
    over = ["train.epochs=1", "data.min_user_positives=0"]
    data_dir = tmp_path / "data"
    if cfg.data.layout == "ktup":
        write_ktup(data_dir / cfg.data.dataset)
    elif cfg.data.layout == "kgat":
        write_kgat(data_dir / cfg.data.dataset)
    else:
        assert cfg.data.dataset in DATASETS, f"{preset.name}: unregistered dataset"
        tiny = write_processed(tmp_path / "tiny")
        over += [f"data.dataset={tiny}", "data.layout=processed"]
    cfg = load_config(preset, over)
    m = run(cfg, tmp_path / "run", data_dir, progress=False)
    protocols = cfg.eval.protocols
    if "ctr" in protocols:
        assert 0.0 <= m["test"]["auc"] <= 1.0
    if "topk" in protocols:
        assert {f"recall@{k}" for k in cfg.eval.ks} <= set(m["topk"])
    if "kg" in protocols:
        assert {"raw", "filtered", "categories"} <= set(m["kg"])
        assert m["kg"]["filtered"]["hits@10"] >= m["kg"]["raw"]["hits@10"]
    assert m["epochs"] == 1 and (tmp_path / "run" / "model.pt").is_file()
