"""Quality floors on real data (one seed each); marked ``slow``: ``pytest -m slow`` runs them."""

import pytest

from kgrec.config import load_config
from kgrec.presets import preset_path
from kgrec.training.experiment import run


@pytest.mark.slow
def test_mkr_lastfm_quality_floor(real_data, tmp_path):
    cfg = load_config(preset_path("mkr-lastfm"), ["train.threads=1"])
    m = run(cfg, tmp_path / "run", real_data, progress=False)
    # paper: AUC 0.797, ACC 0.752; a broken model or pipeline gives ~0.5
    assert m["test"]["auc"] >= 0.77 and m["test"]["acc"] >= 0.72
    assert m["topk"]["recall@100"] > 0.2


@pytest.mark.slow
def test_bprmf_lastfm_topk_floor(real_data, tmp_path):
    """Full-ranking top-K on real data: BPRMF must beat item popularity (Recall@10 0.122)."""
    cfg = load_config(preset_path("bprmf-lastfm"),
                      ["train.threads=1", "train.epochs=30", "train.patience=5"])
    m = run(cfg, tmp_path / "run", real_data, progress=False)
    assert m["topk"]["recall@10"] >= 0.18 and m["topk"]["ndcg@10"] > 0.1
