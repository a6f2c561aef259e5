"""Issue 11: every bad input is a clean library error (``error: WHERE: what`` and exit 2
through ``kgrec.cli.main()``), nothing is accepted silently wrong, and run folders stay
consistent (locks, atomic group-readable writes, data fingerprints, resume after Ctrl-C)."""

from __future__ import annotations

import errno
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from kgrec.config import load_config
from kgrec.data import download, load_dataset
from kgrec.data import registry as reg
from kgrec.data.readers.kgat import load_kgat
from kgrec.data.readers.ktup import load_ktup
from kgrec.data.readers.mkr import load_processed, load_raw
from kgrec.errors import ConfigError, DataError, KGRecError, OutputError
from kgrec.recommend import resolve_id
from kgrec.training.checkpoint import load_checkpoint
from kgrec.training.experiment import run
from kgrec.training.runfolder import LOCK_NAME, RunLock
from tests.conftest import run_cli as cli
from tests.test_reader_kgat import write as write_kgat
from tests.test_reader_ktup import write_ktup


def tiny_cfg_file(tmp_path: Path, folder: Path, model: str = "mkr", **extra) -> Path:
    raw = {
        "model": model,
        "model_args": {"dim": 4, "n_low_layers": 1} if model == "mkr" else {"dim": 4},
        "data": {"dataset": str(folder), "layout": "processed"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.02, "threads": 1},
        "eval": {"protocols": ["ctr", "topk"], "ks": [1, 5]},
    }
    for k, v in extra.items():
        raw.setdefault(k, {}).update(v) if isinstance(v, dict) else raw.__setitem__(k, v)
    p = tmp_path / f"{model}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


# ---- readers -------------------------------------------------------------------------------

def _processed(folder: Path, ratings: str, kg: str = "0\t0\t3\n1\t0\t3\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings_final.txt").write_text(ratings)
    (folder / "kg_final.txt").write_text(kg)
    return folder


@pytest.mark.parametrize("big", ["10000000000", "100000000000000000", "9223372036854775807",
                                 "9223372036854775808", "100000000000000000000"])
@pytest.mark.parametrize("layout, fname", [
    ("processed", "ratings_final.txt"), ("processed", "kg_final.txt"),
    ("ktup", "u_map.dat"), ("ktup", "train.dat"), ("ktup", "kg/train.dat"),
    ("kgat", "train.txt"), ("kgat", "kg_final.txt"), ("kgat", "item_list.txt"),
])
def test_huge_ids_rejected_with_file_and_line(tmp_path, layout, fname, big):
    if layout == "processed":
        ratings, kg = "0\t0\t1\n1\t1\t0\n", "0\t0\t2\n1\t0\t2\n"
        if fname == "ratings_final.txt":
            ratings += f"1\t{big}\t1\n"
        else:
            kg += f"{big}\t0\t2\n"
        folder = _processed(tmp_path / "p", ratings, kg)
        load = lambda: load_processed(folder, "p")  # noqa: E731
    elif layout == "ktup":
        over = {"u_map.dat": f"0\tu10\n1\tu11\n2\tu12\n{big}\tu13\n",
                "train.dat": f"0\t0\t5\n{big}\t1\t4\n",
                "kg/train.dat": f"1\t3\t0\n1\t{big}\t0\n"}
        folder = write_ktup(tmp_path / "k", **{fname: over[fname]})
        load = lambda: load_ktup(folder)  # noqa: E731
    else:
        over = {"train.txt": f"0 0 1\n1 {big}\n", "kg_final.txt": f"0 0 12\n{big} 1 12\n",
                "item_list.txt": f"org_id remap_id freebase_id\nB0 0 m.0\nB1 {big} m.1\n"}
        folder = write_kgat(tmp_path / "g", **{fname.replace(".", "__"): over[fname]})
        load = lambda: load_kgat(folder, "g")  # noqa: E731
    with pytest.raises(DataError) as e:
        load()
    assert e.value.path.endswith(fname) and e.value.line is not None
    assert any(w in e.value.reason for w in ("too large", "64 bits", "unknown"))


def _raw(folder: Path, ratings: str, items: str | None = None, kg: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_artists.dat").write_text(ratings)
    (folder / "item_index2entity_id.txt").write_bytes(
        (items or "".join(f"{10 + k}\t{100 + k}\n" for k in range(6))).encode())
    (folder / "kg.txt").write_bytes((kg or "100\tgenre\t500\n101\tgenre\t501\n").encode())
    return folder


RATINGS = "userID\tartistID\tweight\n" + "".join(f"{u}\t{10 + i}\t{5 + i}\n"
                                                   for u in (1, 2) for i in range(2))


def test_utf8_bom_keeps_first_row(tmp_path):
    plain = load_raw(_raw(tmp_path / "a", RATINGS), "a", "user_artists.dat", "lastfm", 0)
    bom = load_raw(_raw(tmp_path / "b", RATINGS,
                        items="\ufeff" + "".join(f"{10 + k}\t{100 + k}\n" for k in range(6)),
                        kg="\ufeff100\tgenre\t500\n101\tgenre\t501\n"),
                   "b", "user_artists.dat", "lastfm", 0)
    assert bom.item_ids == plain.item_ids and bom.item_ids[0] == "10"
    np.testing.assert_array_equal(bom.triples, plain.triples)
    assert len(bom.triples) == 2 and bom.stats() == plain.stats()
    folder = _processed(tmp_path / "p", "\ufeff0\t0\t1\n1\t1\t0\n")
    assert load_processed(folder, "p").stats()["interactions"] == 2


@pytest.mark.parametrize("weight, reason", [("nan", "finite"), ("inf", "finite"),
                                            ("-Infinity", "finite"), ("-3", "negative"),
                                            ("1_0", "not a number"), ("٣", "not a number")])
def test_non_finite_or_negative_counts_rejected(tmp_path, weight, reason):
    folder = _raw(tmp_path / "r", RATINGS + f"2\t11\t{weight}\n")
    with pytest.raises(DataError) as e:
        load_raw(folder, "r", "user_artists.dat", "lastfm", 0)
    assert e.value.line == 6 and reason in e.value.reason


def test_unknown_artists_are_counted_and_shown(tmp_path, monkeypatch, capsys):
    folder = _raw(tmp_path / "lastfm", RATINGS + "1\tabc\t3\n2\t99999\t4\n1\t99999\t1\n")
    ds = load_raw(folder, "r", "user_artists.dat", "lastfm", 0)
    assert ds.meta["skipped"] == {"unlinked_rating_rows": 3, "unlinked_items": 2}
    assert ds.stats()["positives"] == 4
    monkeypatch.setitem(reg.DATASETS, "tinyfm", reg.DatasetSpec(
        folder="lastfm", description="test", raw_ratings="user_artists.dat", raw_format="lastfm"))
    code, out, err = cli(monkeypatch, capsys, "datasets", "info", "tinyfm", "--data-dir", tmp_path)
    assert code == 0, err
    assert "unlinked_rating_rows 3" in out and "unlinked_items 2" in out
    # the counts survive the preprocessing cache
    code, out, _ = cli(monkeypatch, capsys, "datasets", "info", "tinyfm", "--data-dir", tmp_path)
    assert "unlinked_rating_rows 3" in out


def test_ratings_final_duplicates_dropped_and_conflicts_rejected(tmp_path):
    folder = _processed(tmp_path / "d", "0\t0\t1\n0\t1\t0\n0\t0\t1\n1\t1\t1\n1\t0\t0\n1\t1\t1\n")
    ds = load_processed(folder, "d")
    assert ds.meta["duplicates_removed"]["ratings"] == 2
    assert ds.interactions.tolist() == [[0, 0, 1], [0, 1, 0], [1, 1, 1], [1, 0, 0]]
    pairs = {tuple(r) for r in ds.interactions[:, :2].tolist()}
    assert len(pairs) == len(ds.interactions)  # a pair can be in one part of a split only
    folder = _processed(tmp_path / "c", "0\t0\t1\n0\t1\t0\n1\t1\t1\n0\t0\t0\n")
    with pytest.raises(DataError) as e:
        load_processed(folder, "c")
    assert e.value.line == 4 and "line 1" in e.value.reason


def test_kgat_test_pairs_in_train_are_dropped(tmp_path):
    ds = load_kgat(write_kgat(tmp_path / "g", test__txt="0 1 10\n1 4\n3 6 7\n"), "g")
    assert ds.meta["duplicates_removed"]["test_in_train"] == 1
    train = {tuple(r) for r in ds.given_split.train[:, :2].tolist()}
    test = {tuple(r) for r in ds.given_split.test[:, :2].tolist()}
    assert not train & test and (0, 10) in test


def _tiny_spec(monkeypatch, tmp_path) -> Path:
    folder = _raw(tmp_path / "data" / "tinyfm", RATINGS)
    monkeypatch.setitem(reg.DATASETS, "tinyfm", reg.DatasetSpec(
        folder="tinyfm", description="test", raw_ratings="user_artists.dat", raw_format="lastfm"))
    return folder


def test_truncated_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "cache"))
    _tiny_spec(monkeypatch, tmp_path)
    first = load_dataset("tinyfm", data_dir=tmp_path / "data")
    (cached,) = (tmp_path / "cache" / "processed").glob("tinyfm-*.npz")
    cached.write_bytes(cached.read_bytes()[:40])  # BadZipFile on read
    again = load_dataset("tinyfm", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(first.interactions, again.interactions)
    assert np.load(cached)["interactions"].shape == first.interactions.shape  # rewritten


def test_cache_keyed_by_content_not_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path / "cache"))
    folder = _tiny_spec(monkeypatch, tmp_path)
    first = load_dataset("tinyfm", data_dir=tmp_path / "data")
    kg = folder / "kg.txt"
    st = kg.stat()
    kg.write_text(kg.read_text().replace("501", "502"))  # same size
    os.utime(kg, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    again = load_dataset("tinyfm", data_dir=tmp_path / "data")
    assert first.entity_ids[-1] == "501" and again.entity_ids[-1] == "502"


# ---- configs -------------------------------------------------------------------------------

@pytest.mark.parametrize("override, option", [
    ("train.lr=-1", "train.lr"), ("train.lr=.nan", "train.lr"), ("train.lr=inf", "train.lr"),
    ("train.lr={rec: 0}", "train.lr.rec"), ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.weight_decay=nan", "train.weight_decay"), ("eval.ks=[0]", "eval.ks"),
    ("eval.ks=[]", "eval.ks"), ("eval.batch_users=0", "eval.batch_users"),
    ("train.threads=-1", "train.threads"), ("train.device=gpu", "train.device"),
    ("seed=-1", "seed"), (f"seed={2**70}", "seed"), ("data.ratios=[1, 0, 0]", "data.ratios"),
    ("data.ratios=[0.8, 0.2, 0]", "data.ratios"), ("data.kg_split=[1, 0, 0]", "data.kg_split"),
    ("train.batch_size=0", "train.batch_size"), ("train.monitor=valid.aucc", "train.monitor"),
    ("train.monitor=valid.recall@7", "train.monitor"), ("train.monitor=test.auc", "train.monitor"),
    ("train.bogus=1", "train.bogus"), ("eval.bogus=1", "eval.bogus"), ("data.bogus=1", "data.bogus"),
    ("bogus=1", "bogus"), ("train.lr=[", "--set train.lr"),
    ("train.lr=!!python/object/apply:os.system [echo hi]", "--set train.lr"),
    ("train..lr=1", "--set train..lr"), ("train.epochs.x=1", "--set train.epochs.x"),
    ("model_args.dim=0", "model_args.dim"), ("model_args.dim=-4", "model_args.dim"),
    ("model_args.dim=1.5", "model_args.dim"),
    ("train.schedule=[[rec, 0], [kge, 1]]", "train.schedule"),
    ("train.schedule=[[kge, 1]]", "train.schedule"),
    ("train.schedule=[[nope, 1]]", "train.schedule"),
    ("train.sampler_options.rec.bogus=1", "train.sampler_options"),
    ("train.sampler_options.nope.filter_true=true", "train.sampler_options.nope"),
    ("model_args.dim=1000000000", "model_args"), ("eval.ks=[1000000000]", "eval.ks"),
    ("data.negatives=drop", "eval.protocols"),
])
def test_bad_config_values_exit_2_naming_the_option(tmp_path, tiny_processed, monkeypatch, capsys,
                                                    override, option):
    cfg = tiny_cfg_file(tmp_path, tiny_processed)
    code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", tmp_path / "run", "--quiet",
                       "--set", override)
    assert code == 2, err
    assert err.startswith("error: ") and option in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_divergence_and_protocols_the_model_cannot_score(tmp_path, tiny_processed):
    cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed), ["train.optimizer=sgd",
                                                                 "train.lr=1e300"])
    with pytest.raises(KGRecError, match="diverged at epoch 1.*train.lr"):
        run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed), [
        "eval.protocols=[kg]", "data.kg_split=[0.8, 0.1, 0.1]", "train.monitor=valid.kg.mrr"])
    with pytest.raises(ConfigError, match="does not score KG triples"):
        run(cfg, tmp_path / "run2", progress=False)


def test_config_files_in_utf16_or_binary(tmp_path, monkeypatch, capsys):
    for name, data in [("u16.yaml", "model: mkr\ndata: {dataset: lastfm}\n".encode("utf-16")),
                       ("bin.yaml", bytes(range(256))), ("nul.yaml", b"model: mkr\x00\n")]:
        (tmp_path / name).write_bytes(data)
        code, _, err = cli(monkeypatch, capsys, "train", tmp_path / name)
        assert code == 2 and name in err and "Traceback" not in err
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 1500 + "]" * 1500 + "\n")
    code, _, err = cli(monkeypatch, capsys, "train", tmp_path / "deep.yaml")
    assert code == 2 and "deep.yaml" in err
    code, _, err = cli(monkeypatch, capsys, "train", tmp_path)
    assert code == 2 and "config file not found" in err


def test_set_goes_through_the_file_validation():
    base = {"model": "mkr", "data": {"dataset": "lastfm"}}
    assert load_config(raw=base, overrides=["train.lr=1e-6"]).train.lr == 1e-6
    for bad in (["train.lr=-1"], ["train.lr=.inf"]):
        with pytest.raises(ConfigError, match="train.lr"):
            load_config(raw=base, overrides=bad)
    assert "train" not in base  # the caller's dict is not modified


def test_reproduce_seeds_must_be_positive(tmp_path, monkeypatch, capsys):
    for seeds in ("0", "-2"):
        code, _, err = cli(monkeypatch, capsys, "reproduce", "mkr", "--seeds", seeds,
                           "--write-results", tmp_path / "r.md")
        assert code == 2 and "--seeds" in err
    assert not (tmp_path / "r.md").exists()


def test_sampler_options_checked_against_the_sampler(tiny_processed, tmp_path):
    raw = {"model": "transe", "model_args": {"dim": 4}, "data": {
        "dataset": str(tiny_processed), "layout": "processed", "kg_split": [0.8, 0.1, 0.1]},
        "train": {"epochs": 1, "threads": 1, "monitor": "valid.kg.hits@10",
                  "sampler_options": {"kg": {"filter_tru": True}}},
        "eval": {"protocols": ["kg"]}}
    with pytest.raises(ConfigError, match="filter_tru.*filter_true"):
        run(load_config(raw=raw), tmp_path / "r", progress=False)
    raw["train"]["sampler_options"] = {"kg": {"filter_true": True}}
    assert run(load_config(raw=raw), tmp_path / "r2", progress=False)["epochs"] == 1


# ---- run folders ---------------------------------------------------------------------------

def test_second_run_into_a_locked_folder_fails_at_once(tmp_path, tiny_processed, monkeypatch,
                                                       capsys):
    cfg = tiny_cfg_file(tmp_path, tiny_processed)
    out = tmp_path / "run"
    with RunLock(out):
        code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", out, "--quiet")
        assert code == 2 and "in use by another kgrec run" in err and f"pid {os.getpid()}" in err
    assert not (out / LOCK_NAME).exists()  # released
    (out / LOCK_NAME).write_text("pid 999999999 on elsewhere\n")  # stale: nobody holds it
    code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", out, "--quiet")
    assert code == 0, err
    assert not (out / LOCK_NAME).exists()


def test_output_folder_that_is_a_file_or_not_writable(tmp_path, tiny_processed, monkeypatch, capsys):
    cfg = tiny_cfg_file(tmp_path, tiny_processed)
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "run"):
        code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", out, "--quiet")
        assert code == 2 and "afile" in err and "Traceback" not in err
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            for out in (ro, ro / "run"):
                code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", out, "--quiet")
                assert code == 2 and "read-only" in err
        finally:
            ro.chmod(0o755)


def test_permission_error_is_clean(tmp_path, tiny_processed, monkeypatch, capsys):
    cfg = tiny_cfg_file(tmp_path, tiny_processed)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(reg.tempfile, "mkstemp", denied)
    code, _, err = cli(monkeypatch, capsys, "train", cfg, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and "read-only" in err and "config.yaml" in err


def test_full_disk_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(reg.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(OutputError, match="no space left"):
        reg.atomic_write_bytes(target, b"new contents\n")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json"]


def test_files_are_group_readable(tmp_path, tiny_processed):
    old = os.umask(0o022)
    try:
        reg.atomic_write_bytes(tmp_path / "a.txt", b"x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed))
        run(cfg, tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for p in (tmp_path / "run").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044, p


def test_resume_after_the_data_changed_is_an_error(tmp_path, tiny_processed, monkeypatch, capsys):
    cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed, train={"epochs": 3}))
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "run", progress=False, stop_after=1)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["data_fingerprint"]
    rpath = tiny_processed / "ratings_final.txt"
    lines = rpath.read_text().splitlines(keepends=True)
    rpath.write_text("".join(lines[:-1]))  # one rating fewer
    with pytest.raises(ConfigError, match="data changed"):
        run(cfg, tmp_path / "run", progress=False)
    run(cfg, tmp_path / "run", progress=False, resume=False)  # --no-resume starts again


@pytest.mark.parametrize("content, message", [
    ([1, 2, 3], "not a kgrec checkpoint"),
    ({"config": None}, "missing"),
    (b"\x80\x02garbage", "not a readable kgrec checkpoint"),
])
def test_bad_checkpoints_name_the_file(tmp_path, tiny_processed, content, message):
    cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed))
    out = tmp_path / "run"
    out.mkdir()
    if isinstance(content, bytes):
        (out / "checkpoint.pt").write_bytes(content)
    else:
        if isinstance(content, dict):
            content = {"config": cfg.model_dump(mode="json")}
        torch.save(content, out / "checkpoint.pt")
    with pytest.raises(KGRecError, match=message) as e:
        run(cfg, out, progress=False)
    assert "checkpoint.pt" in str(e.value)


def test_interrupt_mid_epoch_keeps_a_checkpoint_that_resumes(tmp_path, tiny_processed, monkeypatch):
    cfg = load_config(tiny_cfg_file(tmp_path, tiny_processed, train={"epochs": 3}))
    whole = run(cfg, tmp_path / "whole", progress=False)
    from kgrec.models.mkr import MKR

    forward, calls = MKR.forward, {"n": 0}

    def interrupted(self, batch, task):
        calls["n"] += 1
        if calls["n"] == 11:  # inside the second epoch (4 rec + 4 kge steps an epoch)
            raise KeyboardInterrupt
        return forward(self, batch, task)

    monkeypatch.setattr(MKR, "forward", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(MKR, "forward", forward)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"checkpoint.pt", "config.yaml"} <= names  # no lock, no temporary, no half file
    assert not names & {LOCK_NAME, "model.pt", "metrics.json"}
    assert not [n for n in names if n.endswith(".tmp")]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    resumed = run(cfg, tmp_path / "run", progress=False)
    def timeless(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert resumed["test"] == whole["test"]
    assert timeless(resumed["history"]) == timeless(whole["history"])


def _finished_run(tmp_path, folder, model="mkr", **extra) -> Path:
    cfg = load_config(tiny_cfg_file(tmp_path, folder, model=model, **extra))
    out = tmp_path / f"run-{model}"
    run(cfg, out, progress=False)
    return out


def test_model_pt_not_matching_config_or_data(tmp_path, tiny_processed, monkeypatch, capsys):
    out = _finished_run(tmp_path, tiny_processed)
    saved = torch.load(out / "model.pt", weights_only=True)
    bad = {**saved, "config": {**saved["config"], "model_args": {"dim": 6, "n_low_layers": 1}}}
    torch.save(bad, out / "model.pt")
    code, _, err = cli(monkeypatch, capsys, "recommend", out, "--user", "1")
    assert code == 2 and "model.pt" in err and "does not match" in err
    huge = {**saved, "config": {**saved["config"], "model_args": {"dim": 10**9, "n_low_layers": 1}}}
    torch.save(huge, out / "model.pt")
    code, _, err = cli(monkeypatch, capsys, "recommend", out, "--user", "1")
    assert code == 2 and "GiB" in err
    torch.save({"model": saved["model"]}, out / "model.pt")
    code, _, err = cli(monkeypatch, capsys, "recommend", out, "--user", "1")
    assert code == 2 and "missing config" in err
    torch.save(saved, out / "model.pt")
    rpath = tiny_processed / "ratings_final.txt"
    rpath.write_text("".join(rpath.read_text().splitlines(keepends=True)[:-2]))
    code, _, err = cli(monkeypatch, capsys, "recommend", out, "--user", "1")
    assert code == 2 and "other data" in err


def test_corrupt_ktup_pretrained_file(tmp_path, tiny_processed):
    from kgrec.data import make_split
    from kgrec.models import get_model_class

    ds = load_dataset(str(tiny_processed), "processed")
    split = make_split(ds, "ratio", (0.6, 0.2, 0.2), 0)
    bad = tmp_path / "pre.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError, match="pre.pt"):
        get_model_class("ktup").build(ds, split, dim=4, pretrained=str(bad))


# ---- recommend / explain -------------------------------------------------------------------

def test_user_ids_resolve_only_against_the_data():
    assert resolve_id("11", ["10", "11"], 2, "user") == 1
    for value in ("1", "", "²", "٣"):
        with pytest.raises(KGRecError, match="unknown user"):
            resolve_id(value, ["10", "11"], 2, "user")
    assert resolve_id("1", None, 2, "user") == 1
    for value in ("²", "١", "2", "-1", " "):
        with pytest.raises(KGRecError, match="unknown user"):
            resolve_id(value, None, 2, "user")


def test_recommend_and_explain_bad_options(tmp_path, tiny_processed, monkeypatch, capsys):
    out = _finished_run(tmp_path, tiny_processed)
    for user in ("²", "٣", "10**9", "99999"):
        code, _, err = cli(monkeypatch, capsys, "recommend", out, "--user", user)
        assert code == 2 and "unknown user" in err, err
    (tmp_path / "folder.png").mkdir()
    for plot, message in [(tmp_path / "h.xyz", "unknown image format"),
                          (tmp_path / "folder.png", "is a folder")]:
        code, _, err = cli(monkeypatch, capsys, "explain", out, "--user", "1", "--item", "1",
                           "--plot", plot)
        assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("model, extra", [
    ("jnskr", {"eval": {"protocols": ["topk"], "ks": [5]},
               "train": {"monitor": "valid.recall@5"}, "data": {"negatives": "drop"}}),
    ("ktup", {"eval": {"protocols": ["topk"], "ks": [5]},
              "train": {"monitor": "valid.recall@5", "lr": {"rec": 0.01, "kg": 0.01}}}),
])
def test_explain_jnskr_and_ktup_runs(tmp_path, tiny_processed, monkeypatch, capsys, model, extra):
    out = _finished_run(tmp_path, tiny_processed, model=model, **extra)
    code, stdout, err = cli(monkeypatch, capsys, "explain", out, "--user", "1", "--item", "2")
    assert code in (0, 2) and "Traceback" not in err
    if code == 0:
        assert isinstance(json.loads(stdout), dict)
    code, _, err = cli(monkeypatch, capsys, "explain", out, "--user", "1", "--item", "2",
                       "--plot", tmp_path / "h.png")
    assert code == 2 and "HKRM" in err
    code, stdout, err = cli(monkeypatch, capsys, "recommend", out, "--user", "1", "--explain",
                            "--json", "-k", "3")
    assert code == 0, err
    assert len(json.loads(stdout)) == 3


# ---- downloads -----------------------------------------------------------------------------

def _mirror(tmp_path: Path, member: bytes = b"1::10::5::0\n") -> tuple[Path, str]:
    root = tmp_path / "mirror"
    root.mkdir(parents=True)
    (root / "kg.txt").write_bytes(b"100\tgenre\t500\n")
    with zipfile.ZipFile(root / "a.zip", "w") as z:
        z.writestr("a/ratings.dat", member)
        z.writestr("a/other.dat", b"not pinned\n")
    return root, root.as_uri()


def _spec(root: Path, member_sha: str | None, zip_sha: str | None, **kw) -> reg.DatasetSpec:
    return reg.DatasetSpec(folder="dl", description="test", files=(
        reg.RemoteFile("kg.txt", "kg.txt", sha256=reg.file_sha256(root / "kg.txt")),
        reg.RemoteFile("ratings.dat", "a.zip", sha256=zip_sha, member="a/ratings.dat",
                       member_sha256=member_sha, **kw)))


def test_download_pins_archive_and_member(tmp_path, monkeypatch):
    import hashlib

    root, url = _mirror(tmp_path)
    good_member = hashlib.sha256(b"1::10::5::0\n").hexdigest()
    zip_sha = reg.file_sha256(root / "a.zip")
    monkeypatch.setitem(reg.DATASETS, "dl", _spec(root, good_member, zip_sha))
    folder = download("dl", tmp_path / "data", base_url=url)
    assert (folder / "ratings.dat").read_bytes() == b"1::10::5::0\n"
    assert sorted(p.name for p in folder.iterdir()) == ["kg.txt", "ratings.dat"]

    monkeypatch.setitem(reg.DATASETS, "dl", _spec(root, "0" * 64, zip_sha))
    with pytest.raises(DataError, match="a/ratings.dat.*checksum mismatch|checksum mismatch"):
        download("dl", tmp_path / "data2", base_url=url)
    assert not (tmp_path / "data2" / "dl" / "ratings.dat").exists()

    root2, url2 = _mirror(tmp_path / "other", member=b"2::10::1::0\n")  # another zip
    monkeypatch.setitem(reg.DATASETS, "dl", _spec(root2, good_member, zip_sha))
    with pytest.raises(DataError, match="checksum mismatch"):
        download("dl", tmp_path / "data3", base_url=url2)


def test_download_size_limit_and_unpinned_files(tmp_path, monkeypatch):
    root, url = _mirror(tmp_path)
    zip_sha = reg.file_sha256(root / "a.zip")
    monkeypatch.setitem(reg.DATASETS, "dl", _spec(root, "0" * 64, zip_sha, max_bytes=10))
    with pytest.raises(DataError, match="limit"):
        download("dl", tmp_path / "data", base_url=url)
    monkeypatch.setitem(reg.DATASETS, "dl", _spec(root, None, None))
    with pytest.raises(DataError, match="no trustworthy sha256") as e:
        download("dl", tmp_path / "data", base_url=url)
    assert "ratings.dat" in str(e.value)
    assert (tmp_path / "data" / "dl" / "kg.txt").is_file()  # the pinned file is fetched
    (tmp_path / "data" / "dl" / "ratings.dat").write_text("1::10::5::0\n")  # placed by hand
    assert download("dl", tmp_path / "data", base_url=url) == tmp_path / "data" / "dl"


def test_movielens_zip_is_not_fetched_without_a_pinned_hash(tmp_path, monkeypatch, capsys):
    spec = reg.DATASETS["movie"]
    assert all(rf.pinned for rf in spec.files if rf.member is None)
    (zipped,) = [rf for rf in spec.files if rf.member is not None]
    assert not zipped.pinned  # GroupLens publishes no sha256 for ml-1m.zip
    monkeypatch.setitem(reg.DATASETS, "movie", reg.DatasetSpec(
        folder="movie", description="test", files=(zipped,)))
    code, _, err = cli(monkeypatch, capsys, "datasets", "download", "movie", "--data-dir",
                       tmp_path, "--base-url", (tmp_path / "nowhere").as_uri())
    assert code == 2 and "no trustworthy sha256" in err and "ml-1m/ratings.dat" in err
