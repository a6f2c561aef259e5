"""KTUP on DBbook2014 (issue 10): the BPR sampler's ``exclude`` readings, the KG
validation subsample and ``kgrec reproduce ktup`` (Tables 2-4) on tiny data."""

import numpy as np
import pytest

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.samplers import make_sampler, sampler_options
from kgrec.errors import ConfigError


def _tiny() -> tuple[KGDataset, Split]:
    """2 users, 6 items: user 0 trains on 0-1, validates on 2, tests on 3-4."""
    train = np.array([[0, 0, 1], [0, 1, 1], [1, 5, 1]])
    valid = np.array([[0, 2, 1], [1, 4, 1]])
    test = np.array([[0, 3, 1], [0, 4, 1], [1, 0, 1]])
    ds = KGDataset("tiny", np.concatenate([train, valid, test]), np.zeros((0, 3), np.int64),
                   np.arange(6), n_users=2, n_items=6, n_entities=6, n_relations=1)
    return ds, Split(train, valid, test)


def _negatives(exclude: str | None) -> np.ndarray:
    ds, split = _tiny()
    opts = {} if exclude is None else {"exclude": exclude}
    s = make_sampler("bpr", ds, split, 2, **opts)
    out = []
    for seed in range(300):
        for b in s.epoch(seed):
            out.append(np.stack([b["users"].numpy(), b["neg_items"].numpy()], 1))
    return np.concatenate(out)


def test_bpr_exclude_is_a_listed_option():
    assert "exclude" in sampler_options("bpr")


def test_bpr_exclude_all_splits_avoids_valid_and_test_items():
    honest = _negatives(None)
    assert (honest == _negatives("train")).all()  # the default is the honest reading
    leak = _negatives("all_splits")
    user0_honest = set(honest[honest[:, 0] == 0, 1])
    user0_leak = set(leak[leak[:, 0] == 0, 1])
    assert user0_honest == {2, 3, 4, 5}  # valid and test items are drawn as negatives
    assert user0_leak == {5}  # the authors' reading: only items of no split
    assert set(leak[leak[:, 0] == 1, 1]) == {1, 2, 3}


def test_bpr_exclude_rejects_an_unknown_reading():
    ds, split = _tiny()
    with pytest.raises(ConfigError, match="exclude"):
        make_sampler("bpr", ds, split, 2, exclude="test")


def _corruptions(filter_true) -> set[int]:
    """Corrupted tails drawn for the training triple (0, r0, 1) of a KG whose other
    answers of (0, r0) are entity 2 (valid) and 3 (test)."""
    kg = {"train": np.array([[0, 0, 1]]), "valid": np.array([[0, 0, 2]]),
          "test": np.array([[0, 0, 3]])}
    ds = KGDataset("tinykg", np.zeros((0, 3), np.int64), np.concatenate(list(kg.values())),
                   np.full(2, -1), n_users=1, n_items=2, n_entities=6, n_relations=1,
                   kg_split=kg)
    ds_split = Split(np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64),
                     np.zeros((0, 3), np.int64))
    s = make_sampler("triples", ds, ds_split, 1, filter_true=filter_true)
    return {int(b["corrupt_tails"][0]) for seed in range(200) for b in s.epoch(seed)}


def test_kg_filter_all_splits_is_the_authors_leak():
    """filter_true=all_splits (the KTUP authors' corruption filter) never draws a held-out
    answer as a negative; the honest filter (train triples only) does."""
    assert _corruptions(True) == {0, 2, 3, 4, 5}
    assert _corruptions("all_splits") == {0, 4, 5}
    with pytest.raises(ConfigError, match="filter_true"):
        _corruptions("test")


def test_kg_samples_are_fixed_and_of_the_asked_size(tiny_processed):
    from kgrec.config import load_config
    from kgrec.training.experiment import _kg_part, prepare_data

    raw = {"model": "transh", "data": {"dataset": str(tiny_processed), "layout": "processed",
                                       "kg_split": [0.6, 0.2, 0.2]},
           "train": {"monitor": "valid.kg.hits@10"}, "eval": {"protocols": ["kg"]}}
    ds, _ = prepare_data(load_config(raw=raw))
    full = ds.kg_split["test"]
    part = _kg_part(ds, "test", 5)
    assert len(part) == 5 and len(_kg_part(ds, "test", None)) == len(full)
    assert (part == _kg_part(ds, "test", 5)).all()  # the same sample every call
    assert {tuple(t) for t in part} <= {tuple(t) for t in full}
    assert len(_kg_part(ds, "test", 10 ** 6)) == len(full)


_TINY = {  # preset stem -> model lines; data and protocol below
    "bprmf": "model: bprmf\nmodel_args: {dim: 4}\n",
    "ktup": "model: ktup\nmodel_args: {dim: 4, joint_lambda: 0.7}\n",
    "transh": "model: transh\nmodel_args: {dim: 4}\n",
}


@pytest.fixture
def ktup_project(tmp_path, tiny_processed):
    conf = tmp_path / "configs"
    conf.mkdir()
    data = (f"data: {{dataset: {tiny_processed}, layout: processed, split: per_user, "
            "ratios: [0.6, 0.2, 0.2], negatives: drop, kg_split: [0.6, 0.2, 0.2]}\n")
    for stem, head in _TINY.items():
        kg_only = stem == "transh"
        lr = "{kg: 0.01}" if kg_only else "{rec: 0.01, kg: 0.01}" if "ktup" in stem else "{rec: 0.01}"
        train = (f"train: {{batch_size: 32, lr: {lr}, "
                 + ("joint: true, " if stem == "ktup" else "")
                 + f"monitor: {'valid.kg.hits@10' if kg_only else 'valid.recall@10'}}}\n")
        ev = ("eval: {protocols: [kg], kg_valid_triples: 20}\n" if kg_only else
              "eval: {protocols: [topk, kg], ks: [10], ndcg_authors: ktup}\n" if stem == "ktup"
              else "eval: {protocols: [topk], ks: [10], ndcg_authors: ktup}\n")
        (conf / f"{stem}-tiny.yaml").write_text(head + data + train + ev)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("# Results\n")
    return tmp_path


def test_reproduce_ktup_writes_tables_2_3_4(ktup_project, monkeypatch, capsys):
    from kgrec import cli

    monkeypatch.chdir(ktup_project)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ktup", "--seeds", "2", "--datasets", "tiny", "--out", "runs",
                  "--configs", "configs", "--budget", "400", "--write-results",
                  "docs/results.md", "--rows", "BPRMF,KTUP (soft),TransH", "--no-warm-start"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    text = (ktup_project / "docs" / "results.md").read_text()
    for block in ("table2", "table4", "table3"):
        assert f"<!-- reproduce:ktup-cold-{block}:tiny -->" in text
    t2 = text.split("<!-- reproduce:ktup-cold-table2:tiny -->")[1].split("<!-- /")[0]
    for label in ("BPRMF", "KTUP (soft)"):
        assert f"| {label} |" in t2
    assert "| TransH |" not in t2 and "| TUP (soft) |" not in t2  # KG-only row; no tup preset
    t4 = text.split("<!-- reproduce:ktup-cold-table4:tiny -->")[1].split("<!-- /")[0]
    assert "| TransH |" in t4 and "| KTUP (soft) |" in t4 and "| BPRMF |" not in t4
    assert "lambda" in t2 and "joint_lambda=0." in t2  # KTUP's grid is lambda
    # every run stopped at the budget (one batch over at most) and seeds 0, 1 were tested
    runs = sorted((ktup_project / "runs" / "tiny").glob("*/s1/metrics.json"))
    assert len(runs) == 3
    import json
    for path in runs:
        m = json.loads(path.read_text())
        assert max(m["examples"].values()) < 400 + 32 and ("topk" in m or "kg" in m)
    assert out.count("Table 2") == 1
    t3 = text.split("<!-- reproduce:ktup-cold-table3:tiny -->")[1].split("<!-- /")[0]
    assert "| TransH |" in t3 and "head N-1" in t3


def test_reproduce_ktup_rows_option(ktup_project, monkeypatch, capsys):
    from kgrec import cli

    monkeypatch.chdir(ktup_project)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ktup", "--seeds", "1", "--datasets", "tiny", "--out", "runs",
                  "--configs", "configs", "--budget", "100", "--rows", "bprmf"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "| BPRMF |" in out and "KTUP (soft)" not in out and "--rows 'BPRMF'" in out
    assert "Table 4" not in out and "Table 3" not in out  # no KG row: no empty KG tables
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ktup", "--datasets", "tiny", "--configs", "configs",
                  "--rows", "BPRMF,NoSuchModel"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "--rows: unknown row 'NoSuchModel'" in err


def test_reproduce_ktup_authors_sampler_reading(ktup_project, monkeypatch, capsys):
    from kgrec import cli

    monkeypatch.chdir(ktup_project)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ktup", "--seeds", "1", "--datasets", "tiny", "--out", "runs",
                  "--configs", "configs", "--budget", "100", "--rows", "BPRMF,TransH", "--set",
                  "train.sampler_options.rec.exclude=all_splits"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "authors' negative sampler" in out and "Table 4" not in out
    assert "--set train.sampler_options.rec.exclude=all_splits`" in out  # the command says so
    assert "| BPRMF |" in out and "| TransH |" not in out  # a KG-only row: no rec sampler
    cfg = (ktup_project / "runs" / "tiny" / "bprmf-all_splits-lrx1" / "s0" / "config.yaml").read_text()
    assert "exclude: all_splits" in cfg


def test_reproduce_ktup_warm_start_chains_rows_seed_for_seed(ktup_project, monkeypatch, capsys):
    """Warm start (the default) adds the rows a warm row needs (KTUP <- TUP + TransH, TUP <- BPRMF,
    TransH <- TransE) and starts each seed from the same seed's selected model.pt."""
    import json
    from pathlib import Path

    import yaml

    from kgrec import cli

    conf = ktup_project / "configs"
    for stem, src in (("tup", "bprmf"), ("transe", "transh")):
        text = (conf / f"{src}-tiny.yaml").read_text().replace(f"model: {src}", f"model: {stem}")
        (conf / f"{stem}-tiny.yaml").write_text(text)
    monkeypatch.chdir(ktup_project)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "ktup", "--seeds", "2", "--datasets", "tiny", "--out", "runs",
                  "--configs", "configs", "--budget", "200", "--write-results",
                  "docs/results.md", "--rows", "KTUP (soft)"])
    assert exc.value.code == 0
    text = (ktup_project / "docs" / "results.md").read_text()
    t2 = text.split("<!-- reproduce:ktup-table2:tiny -->")[1].split("<!-- /")[0]
    t4 = text.split("<!-- reproduce:ktup-table4:tiny -->")[1].split("<!-- /")[0]
    assert "| BPRMF |" in t2 and "| TUP (soft), from BPRMF |" in t2
    assert "| KTUP (soft), from TUP (soft) + TransH |" in t2 and "warm-start" not in t2
    assert "| TransE |" in t4 and "| TransH, from TransE |" in t4
    assert "<!-- reproduce:ktup-cold-table2:tiny -->" not in text  # warm start is the default
    runs = ktup_project / "runs" / "tiny"
    (chosen,) = [p.parent for p in runs.glob("ktup-soft-warm-joint_lambda*/s1")]
    for s in (0, 1):
        ktup = chosen / f"s{s}"
        starts = yaml.safe_load((ktup / "config.yaml").read_text())["init_from"]
        assert [p.split("/")[-3].split("-lr")[0] for p in starts] == ["tup-soft-warm", "transh-warm"]
        assert all(p.endswith(f"/s{s}/model.pt") for p in starts)
        tup = Path(starts[0]).parent  # the selected TUP run of this seed
        (bpr,) = yaml.safe_load((tup / "config.yaml").read_text())["init_from"]
        assert "/bprmf-lr" in bpr and bpr.endswith(f"/s{s}/model.pt")
        assert "topk" in json.loads((ktup / "metrics.json").read_text())


def test_init_from_copies_matching_tensors_and_changes_training(tmp_path, tiny_processed):
    """The config's init_from (any model): the named tensors start as the checkpoint's,
    and the run differs from a cold one."""
    import torch

    from kgrec.config import load_config
    from kgrec.models import get_model_class
    from kgrec.training.experiment import prepare_data, run

    raw = {"model": "bprmf", "model_args": {"dim": 4},
           "data": {"dataset": str(tiny_processed), "layout": "processed", "split": "per_user",
                    "negatives": "drop"},
           "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "monitor": "valid.recall@10"},
           "eval": {"protocols": ["topk"], "ks": [10]}}
    run(load_config(raw=raw), tmp_path / "bpr", progress=False)
    ckpt = tmp_path / "bpr" / "model.pt"
    tup = {**raw, "model": "tup", "model_args": {"dim": 4, "n_preferences": 2}}
    cfg = load_config(raw={**tup, "init_from": [str(ckpt)]})
    ds, split = prepare_data(cfg)
    model = get_model_class("tup").build(ds, split, **cfg.model_args)
    assert sorted(model.load_pretrained(ckpt)) == ["item_emb.weight", "user_emb.weight"]
    saved = torch.load(ckpt, weights_only=True)["model"]
    assert torch.equal(model.user_emb.weight, saved["user_emb.weight"])
    warm = run(cfg, tmp_path / "warm", progress=False)
    cold = run(load_config(raw=tup), tmp_path / "cold", progress=False)
    assert warm["history"][0]["loss_rec"] != cold["history"][0]["loss_rec"]
    with pytest.raises(ConfigError, match="not found"):
        run(load_config(raw={**tup, "init_from": [str(tmp_path / "none.pt")]}),
            tmp_path / "bad", progress=False)
