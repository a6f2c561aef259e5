"""Quality floor on real data: MKR on Last.FM with the paper's settings (one seed)."""

from kgrec.config import load_config
from kgrec.training.experiment import run

from .conftest import REPO


def test_mkr_lastfm_quality_floor(real_data, tmp_path):
    cfg = load_config(REPO / "configs" / "mkr-lastfm.yaml", ["train.threads=1"])
    m = run(cfg, tmp_path / "run", real_data, progress=False)
    # paper: AUC 0.797, ACC 0.752; a broken model or pipeline gives ~0.5
    assert m["test"]["auc"] >= 0.77 and m["test"]["acc"] >= 0.72
    assert m["topk"]["recall@100"] > 0.2
