"""``kgrec reproduce mkr --study NAME``: each study through ``kgrec.cli.main()`` on tiny
synthetic data writes its table and figure; MKR's top-K protocol against hand-computed
values; ``data.kg_ratio`` changes training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec import cli
from kgrec.config import load_config
from kgrec.data.dataset import Split
from kgrec.studies import StudyContext
from kgrec.studies.mkr import KS, STUDIES, _sparsity_extra, mkr_topk, train_kge_only
from kgrec.training.experiment import prepare_data, run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def project(tmp_path, tiny_processed):
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, unit, layers in (("mkr", "cross_compress", 1), ("mkr-dcn", "dcn", 2),
                               ("mkr-stitch", "stitch", 2)):
        (configs / f"{name}-tiny.yaml").write_text(
            f"model: mkr\nmodel_args: {{dim: 4, n_low_layers: {layers}, unit: {unit}}}\n"
            f"data: {{dataset: {tiny_processed}, layout: processed}}\n"
            "train: {epochs: 1, batch_size: 64, lr: {rec: 0.02, kge: 0.01}, threads: 1,\n"
            "        schedule: [[rec, 2], [kge, 1]]}\n"
            "eval: {protocols: [ctr]}\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("# Results\n\nkept\n")
    return tmp_path


def _main(monkeypatch, capsys, cwd, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "mkr", "--datasets", "tiny", "--configs", "configs",
                  "--out", "runs", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


#: a short sweep per study keeps the test fast; sparsity runs the paper's whole grid
SHORT = {"kg-size": "0.5,1", "t": "1,3", "dim": "2,4"}


@pytest.mark.parametrize("name", list(STUDIES))
def test_each_study_writes_its_table_and_figure(project, monkeypatch, capsys, name):
    extra = ["--values", SHORT[name]] if name in SHORT else []
    seeds = ["--seeds", "2"] if name == "kge" else []
    code, out, err = _main(monkeypatch, capsys, project, "--study", name, *seeds, *extra)
    assert code == 0, err
    table = (project / "runs" / f"mkr-{name}.md").read_text()
    assert table == out.strip() + "\n" or out.strip() in table
    assert f"kgrec reproduce mkr --study {name}" in table and "| tiny" in table or "tiny" in table
    assert (project / "runs" / f"mkr-{name}.png").read_bytes().startswith(PNG)
    assert (project / "docs" / "results.md").read_text() == "# Results\n\nkept\n"  # not asked
    assert not (project / "docs" / "figures").exists()
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    n_rows = {"variants": 4, "topk": len(KS), "sparsity": 10, "kge": 1, "kg-size": 2, "t": 2,
              "dim": 2}[name]
    assert len(lines) == 1 + n_rows  # header + one row per variant / K / value
    if name == "variants":  # the tiny MKR preset has L = 1: MKR-1L is MKR
        assert "| MKR-1L (= MKR: the preset's L is 1) | tiny |" in table
        assert "| MKR-DCN | tiny |" in table and "| MKR-stitch | tiny |" in table
        assert len(list((project / "runs").glob("*-tiny-s0*"))) == 3
    if name == "kge":
        assert "± " in table  # two seeds: mean ± std
    if name == "sparsity":
        assert "| 10% | 0.868 |" in table and "| 100% | 0.917 |" in table  # Table 3 beside ours


def test_study_runs_are_reused_and_results_written_on_request(project, monkeypatch, capsys):
    code, _, err = _main(monkeypatch, capsys, project, "--study", "kg-size", "--values", "0.5,1")
    assert code == 0, err
    runs = sorted(p.name for p in (project / "runs").iterdir() if p.is_dir())
    assert runs == ["mkr-tiny-s0", "mkr-tiny-s0-data_kg_ratio_0_5"]
    stamp = (project / "runs" / "mkr-tiny-s0" / "metrics.json").stat().st_mtime_ns
    code, out, err = _main(monkeypatch, capsys, project, "--study", "kg-size", "--values",
                           "0.5,1", "--write-results", "docs/results.md")
    assert code == 0, err
    assert (project / "runs" / "mkr-tiny-s0" / "metrics.json").stat().st_mtime_ns == stamp
    text = (project / "docs" / "results.md").read_text()
    assert text.startswith("# Results\n\nkept\n")
    assert "<!-- mkr:study:kg-size -->" in text and "![" in text
    assert "(figures/mkr-kg-size.png)" in text
    assert (project / "docs" / "figures" / "mkr-kg-size.png").read_bytes().startswith(PNG)


def test_bogus_study_is_a_usage_error(project, monkeypatch, capsys):
    code, _, err = _main(monkeypatch, capsys, project, "--study", "bogus")
    assert code == 2
    assert "Usage:" in err and "--study" in err and "variants" in err
    assert not (project / "runs").exists()


def test_values_only_for_sweeps(project, monkeypatch, capsys):
    code, _, err = _main(monkeypatch, capsys, project, "--study", "variants", "--values", "1,2")
    assert code == 2 and "error:" in err and "--values" in err
    code, _, err = _main(monkeypatch, capsys, project, "--study", "t", "--values", "1.5")
    assert code == 2 and "positive integers" in err
    code, _, err = _main(monkeypatch, capsys, project, "--study", "t", "--values", "x")
    assert code == 2 and "Usage:" in err


class FixedScores(torch.nn.Module):
    """``score_all`` returns a fixed score table (users x items)."""

    def __init__(self, scores):
        super().__init__()
        self.register_buffer("scores", torch.as_tensor(scores, dtype=torch.float32))
        self.n_users, self.n_items = self.scores.shape

    def score_all(self, users):
        return self.scores[users]


def test_mkr_topk_matches_hand_computed_values():
    # user 0: train rows items 0 (pos) and 1 (neg): both excluded; valid positive 2 stays a
    # candidate; test positives 3 and 5. Scores rank 1 > 0 > 2 > 3 > 4 > 5.
    # Candidates in order: 2, 3, 4, 5 -> top-1 {2}: P 0, R 0; top-2 {2,3}: P 1/2, R 1/2;
    # top-5: {2,3,4,5}: 2 hits, P 2/5, R 1.
    # user 1: train row item 5 (neg); test positive 0; scores rank 0 first -> P@1 1, R@1 1.
    # user 2: no training row: not evaluated. user 3: train rows, no test positive: skipped.
    scores = np.array([[5, 6, 4, 3, 2, 1], [9, 1, 1, 1, 1, 0], [1, 2, 3, 4, 5, 6],
                       [1, 1, 1, 1, 1, 1]], dtype=float)
    train = np.array([[0, 0, 1], [0, 1, 0], [1, 5, 0], [3, 2, 1]])
    valid = np.array([[0, 2, 1]])
    test = np.array([[0, 3, 1], [0, 5, 1], [0, 4, 0], [1, 0, 1], [2, 1, 1]])
    m = mkr_topk(FixedScores(scores), Split(train, valid, test), 4, 6, ks=(1, 2, 5))
    assert m["users"] == 2
    assert m["precision@1"] == pytest.approx((0 + 1) / 2)
    assert m["recall@1"] == pytest.approx((0 + 1) / 2)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert m["recall@5"] == pytest.approx((1 + 1) / 2)


def test_kg_ratio_subsamples_the_kg_and_changes_training(tmp_path, tiny_processed):
    def cfg(ratio):
        return load_config(raw={
            "model": "mkr", "model_args": {"dim": 4, "n_low_layers": 1},
            "data": {"dataset": str(tiny_processed), "layout": "processed", "kg_ratio": ratio},
            "train": {"epochs": 1, "batch_size": 16, "lr": 0.02, "threads": 1},
            "eval": {"protocols": ["ctr"]}})

    full, _ = prepare_data(cfg(1.0))
    half, _ = prepare_data(cfg(0.5))
    assert len(half.triples) == round(len(full.triples) / 2)
    kept = {tuple(t) for t in full.triples.tolist()}
    assert {tuple(t) for t in half.triples.tolist()} <= kept  # a subset, not new triples
    a = run(cfg(1.0), tmp_path / "full", progress=False)
    b = run(cfg(0.5), tmp_path / "half", progress=False)
    assert a["history"][0]["loss_kge"] != b["history"][0]["loss_kge"]


def test_kge_only_trains_the_kge_task_alone(tmp_path, tiny_processed):
    (tmp_path / "mkr-tiny.yaml").write_text(
        f"model: mkr\nmodel_args: {{dim: 4, n_low_layers: 1}}\n"
        f"data: {{dataset: {tiny_processed}, layout: processed}}\n"
        "train: {epochs: 1, batch_size: 16, lr: {rec: 0.02, kge: 0.05}, threads: 1}\n")
    ctx = StudyContext("mkr", ["tiny"], 1, tmp_path / "runs", configs=tmp_path)
    untrained = train_kge_only(ctx, "mkr-tiny", 0, 0)
    trained = train_kge_only(ctx, "mkr-tiny", 0, 600)
    assert trained != pytest.approx(untrained)
    assert train_kge_only(ctx, "mkr-tiny", 0, 600) == trained  # cached, same figure


def test_sparsity_keeps_the_training_length_in_examples(tiny_processed):
    cfg = load_config(raw={"model": "mkr", "data": {"dataset": str(tiny_processed)},
                           "train": {"epochs": 30, "patience": 5}})
    assert _sparsity_extra(cfg, 1.0) == ()
    assert _sparsity_extra(cfg, 0.1) == ("data.train_ratio=0.1", "train.epochs=300",
                                         "train.eval_every=10")
    assert _sparsity_extra(cfg, 0.5) == ("data.train_ratio=0.5", "train.epochs=60",
                                         "train.eval_every=2")
    assert _sparsity_extra(cfg, 0.8) == ("data.train_ratio=0.8",)  # round(1/r) = 1
