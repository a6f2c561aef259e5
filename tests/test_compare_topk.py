"""benchmarks/compare_topk.py: LABEL=STEM entries, per-model seeds, examples and seconds to the
validation-best epoch, the full top-K table; and the top-K presets of the comparison share one
data protocol per dataset (issues 15 and 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.config import load_config
from kgrec.presets import PRESET_DIR

from .conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cmp():
    return load_benchmark("compare_topk")


#: the comparison's models per dataset and the preset whose data protocol they share
PROTOCOL = {"lastfm": "jnskr-lastfm", "book": "jnskr-book", "dbbook2014": "bprmf-dbbook2014"}
MODELS = {"lastfm": ["enmf", "kgat", "ncf-topk", "nfm-topk", "ripplenet-topk", "bprmf"],
          "book": ["enmf", "kgat", "ncf-topk", "nfm-topk", "ripplenet-topk", "bprmf"],
          "dbbook2014": ["enmf", "kgat", "ncf", "nfm", "ripplenet", "bprmf"]}


@pytest.mark.parametrize("dataset", sorted(PROTOCOL))
def test_topk_presets_share_the_data_protocol_of_their_dataset(dataset):
    ref = load_config(PRESET_DIR / f"{PROTOCOL[dataset]}.yaml")
    for stem in MODELS[dataset]:
        cfg = load_config(PRESET_DIR / f"{stem}-{dataset}.yaml")
        assert cfg.data == ref.data, f"{stem}-{dataset}"
        if stem == "bprmf":  # the harness sets the monitor and ks of every model
            continue
        assert "topk" in cfg.eval.protocols and {10, 20, 40} <= set(cfg.eval.ks)
        assert cfg.train.monitor == "valid.recall@20"
        if cfg.model in ("ncf", "nfm", "ripplenet"):  # CTR models: sampled negatives
            assert cfg.model_args["sampler"] == "pointwise"
            assert cfg.train.sampler_options["rec"]["negatives"] == {"ncf": 4, "nfm": 2,
                                                                    "ripplenet": 1}[cfg.model]


def test_label_entries_name_a_preset_stem(cmp):
    assert cmp._spec("ncf=ncf-topk", "lastfm", PRESET_DIR) == (PRESET_DIR / "ncf-topk-lastfm.yaml", [])
    assert cmp._label("ncf=ncf-topk") == "ncf" and cmp._label("bprmf") == "bprmf"
    assert cmp._spec("tup-hard", "lastfm", PRESET_DIR)[1] == ["model_args.induction=hard"]


def _metrics(recall20: float, best: int, epochs: int, secs: float) -> dict:
    history = [{"epoch": e, "examples_rec": 100 * (e + 1), "examples_kg": 1000 * (e + 1),
                "seconds": 9.0} for e in range(epochs)]
    topk = {f"{m}@{k}": recall20 / (1 + (m != "recall")) for m in ("recall", "ndcg", "ndcg_authors")
            for k in (10, 20)}
    return {"topk": topk, "history": history, "best_epoch": best, "epochs": epochs,
            "train_seconds": secs}


def test_to_best_reads_the_best_epoch_row(cmp):
    examples, secs = cmp.to_best(_metrics(0.3, best=3, epochs=6, secs=12.0))
    assert examples == {"rec": 300, "kg": 3000}
    assert secs == pytest.approx(12.0 * 3 / 6)


def test_full_table_rows(cmp):
    runs = [_metrics(0.2, 2, 4, 8.0), _metrics(0.4, 4, 4, 8.0)]
    res = {"m": {"runs": runs, "grid": [(1.0, 0.31, 2), (3.0, 0.29, 4)], "lr": ["train.lr=0.1"],
                 "extra": []}}
    table = cmp.full_topk_table(res, [10, 20], "cmd", "budget", None, "cpu")
    row = next(line for line in table.splitlines() if line.startswith("| m |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "m"
    assert cells[1] == "0.3000 ± 0.1414"  # recall@10 of 0.2 and 0.4
    assert cells[2] == "0.1500 ± 0.0707"  # ndcg@10
    assert cells[7] == "2"  # seeds
    assert cells[9] == "x1: 0.3100, x3: 0.2900"
    assert cells[10] == "rec 300; kg 3k"  # median of 200 and 400; of 2,000 and 4,000
    assert cells[11] == "6.0"  # median of 8 * 2/4 and 8 * 4/4
    assert cells[12] == "3"


def test_compare_with_labels_and_per_model_seeds(cmp, tmp_path):
    from .conftest import write_processed

    tiny = write_processed(tmp_path / "tiny")
    configs = tmp_path / "configs"
    configs.mkdir()
    for stem in ("bprmf", "enmf"):
        (configs / f"{stem}-tiny.yaml").write_text((PRESET_DIR / f"{stem}-lastfm.yaml").read_text())
    fixed = ["train.epochs=2", f"data.dataset={tiny}", "data.layout=processed",
             "train.monitor=valid.recall@10", "eval.ks=[10]", "eval.ndcg_authors=legacy"]
    out = tmp_path / "out"
    res = cmp.compare(["bprmf", "e=enmf"], "tiny", [1.0, 2.0], 2, fixed, out, None, configs,
                      model_seeds={"e": 1})
    assert set(res) == {"bprmf", "e"}
    assert len(res["bprmf"]["runs"]) == 2 and len(res["e"]["runs"]) == 1
    assert res["e"]["runs"][0]["model"] == "enmf"
    assert (out / "e-lr1-s0" / "metrics.json").is_file() and (out / "e-lr2-s0").is_dir()
    assert not (out / "e-lr1-s1").exists() and not (out / "e-lr2-s1").exists()
    assert "ndcg_authors@10" in res["e"]["runs"][0]["topk"]
    table = cmp.full_topk_table(res, [10], "cmd", "budget", None, "cpu")
    assert table.count("\n| bprmf |") == 1 and "| e |" in table
