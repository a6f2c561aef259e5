"""benchmarks/compare_ctr.py: the papers' figures, examples to the best epoch, the table, and
an end-to-end comparison on tiny data (grid on seed 0, the chosen setting's seeds, the block
written into a results file, finished runs reused, ``--block`` writing another block)."""

from __future__ import annotations

import json

import pytest
import yaml

from kgrec.presets import PRESET_DIR

from .conftest import load_benchmark, write_processed


def load():
    return load_benchmark("compare_ctr")


def run_metrics(auc, acc, best, secs, per_epoch=100):
    hist = [{"epoch": e, "examples_rec": per_epoch * (e + 1)} for e in range(best + 1)]
    return {"test": {"auc": auc, "acc": acc}, "best_epoch": best, "history": hist,
            "train_seconds": secs}


def test_examples_to_best_reads_the_selected_epochs_row():
    cc = load()
    assert cc.examples_to_best(run_metrics(0.7, 0.6, 3, 1.0)) == {"rec": 300}  # 1-based best
    assert cc.examples_to_best({"best_epoch": 2, "history": []}) == {}
    two = [{"best_epoch": 1, "history": [{"epoch": 0, "examples_rec": 1000, "examples_kge": 500}]},
           {"best_epoch": 2, "history": [{"epoch": 0, "examples_rec": 1000},
                                         {"epoch": 1, "examples_rec": 3000, "examples_kge": 900}]}]
    assert cc._examples(two) == "rec 2k; kge 700"  # medians over the runs
    assert cc._count(1_234_567) == "1.23M"


def test_table_has_mean_std_papers_values_and_budget_columns():
    cc = load()
    res = {"ripplenet": {"grid": [(0.5, 0.71, 2), (1.0, 0.72, 1), (2.0, 0.70, 1)],
                         "lr": ["train.lr=0.02"], "extra": [], "device": "cpu",
                         "runs": [run_metrics(0.80, 0.70, 2, 10.0),
                                  run_metrics(0.78, 0.74, 1, 30.0),
                                  run_metrics(0.79, 0.72, 3, 20.0)]},
           "ncf": {"grid": [(1.0, 0.6, 1)], "lr": ["train.lr=0.001"], "extra": [],
                   "runs": [{"history": []}]}}  # no test metrics: not shown
    table = cc.ctr_table(res, "lastfm", "python x", "0..2", "m")
    rows = [r for r in table.splitlines() if r.startswith("| ripplenet")]
    assert len(rows) == 1 and "| ncf" not in table
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "0.768 (MKR)" and cells[3] == "0.691 (MKR)"
    assert cells[2] == "0.7900 ± 0.0100" and cells[4] == "0.7200 ± 0.0200"
    assert cells[5] == "3" and cells[6] == "train.lr=0.02"
    assert cells[7] == "x0.5: 0.7100, x1: 0.7200, x2: 0.7000"
    assert cells[8] == "rec 200" and cells[9] == "20; cpu"  # medians
    assert "`python x`" in table
    assert cc._paper("book", "cke-ctr", 1) == "0.671 (MKR); 0.676 (HKRM)"
    assert cc._paper("lastfm", "hkrm", 2) == "-"


def test_seed_counts():
    cc = load()
    assert cc.seed_counts(["a", "b"], 3, "b=1") == {"a": 3, "b": 1}
    for bad in ("c=1", "b=0", "b"):
        with pytest.raises(SystemExit):
            cc.seed_counts(["a", "b"], 3, bad)


def test_comparison_end_to_end_on_tiny_data(tmp_path, capsys):
    cc = load()
    tiny = write_processed(tmp_path / "tiny")
    configs = tmp_path / "configs"
    configs.mkdir()
    for stem in ("ncf", "fm-ctr"):
        raw = yaml.safe_load((PRESET_DIR / f"{stem}-lastfm.yaml").read_text())
        raw["data"].update(dataset=str(tiny), layout="processed")
        (configs / f"{stem}-tiny.yaml").write_text(yaml.safe_dump(raw))
    results = tmp_path / "results.md"
    results.write_text("# R\n")
    argv = ["--dataset", "tiny", "--models", "ncf,fm-ctr", "--seeds", "2",
            "--lr-factors", "0.5,4", "--configs", str(configs), "--out", str(tmp_path / "out"),
            "--set", "train.epochs=3", "--set", "train.max_examples.rec=400",
            "--model-seeds", "fm-ctr=1", "--write-results", str(results)]
    cc.main(argv)
    out = tmp_path / "out" / "tiny" / "ctr"
    summary = json.loads((out / "ctr-summary.json").read_text())
    for name in ("ncf", "fm-ctr"):
        grid = summary[name]["grid"]  # (factor, valid AUC, best epoch) on seed 0
        assert [g[0] for g in grid] == [0.5, 4.0]
        f = summary[name]["factor"]
        assert f == max(grid, key=lambda g: g[1])[0]
        seeds = (0,) if name == "fm-ctr" else (0, 1)
        assert not (out / f"{name}-lr{f:g}-s{len(seeds)}").exists()
        for seed in seeds:
            m = json.loads((out / f"{name}-lr{f:g}-s{seed}" / "metrics.json").read_text())
            assert m["seed"] == seed and 0 <= m["test"]["auc"] <= 1
            assert "topk" not in m  # eval.protocols=[ctr] for every run (FIXED)
            assert m["examples"]["rec"] < 400 + 256  # the cap stops after the step reaching it
            cfg = yaml.safe_load((out / f"{name}-lr{f:g}-s{seed}" / "config.yaml").read_text())
            assert cfg["train"]["monitor"] == "valid.auc"
        assert not (out / f"{name}-lr{[g[0] for g in grid if g[0] != f][0]:g}-s1").exists()
    text = results.read_text()
    assert "<!-- ctr:tiny -->" in text
    rows = {r.split("|")[1].strip(): r.split("|")[6].strip() for r in text.splitlines()
            if r.startswith("| ncf") or r.startswith("| fm-ctr")}
    assert rows == {"ncf": "2", "fm-ctr": "1"}  # the seeds column
    assert "train.max_examples.rec=400" in text
    # a second call reuses every finished run; --block writes a block of its own
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")}
    cc.main([*argv, "--block", "ctr:tiny-extra"])
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")} == stamp
    assert "| ncf |" in capsys.readouterr().out
    again = results.read_text()
    assert again.startswith(text.rstrip())  # ctr:tiny kept as it was
    extra = again.split("<!-- ctr:tiny-extra -->", 1)[1].split("<!-- /ctr:tiny-extra -->")[0]
    assert "| ncf |" in extra and "--block ctr:tiny-extra" in extra
