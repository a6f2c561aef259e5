"""``kgrec tune``: search spaces, the Optuna study, kill -9 and resume, parallel workers,
and the outputs (best preset with provenance, trials table, plots)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from kgrec.cli import main
from kgrec.config import load_config
from kgrec.errors import ConfigError
from kgrec.training import experiment
from kgrec.tuning import SPACES, load_space

from .conftest import REPO, write_processed

PRESETS = ("mkr-lastfm", "ktup-lastfm", "jnskr-lastfm", "bprmf-lastfm", "hkrm-book")


def cli(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["kgrec", *map(str, args)])
    try:
        main()
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_spaces_fit_their_presets(name):
    space = load_space(SPACES / f"{name}.yaml")
    preset = SPACES.parent / f"{name}.yaml"
    for key, spec in space.items():
        value = spec["choices"][-1] if spec["type"] == "categorical" else spec["high"]
        cfg = load_config(preset, [f"{key}={value}"]).model_dump()
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx(value), key


@pytest.mark.parametrize("text, msg", [
    ("train.lr: {type: float, low: 1, high: 0.1}", "low must be below high"),
    ("train.lr: {type: float, low: 0, high: 1, log: true}", "log scale needs low > 0"),
    ("train.lr: {type: normal}", "type one of"),
    ("model_args.dim: {type: categorical, choices: []}", "non-empty 'choices'"),
    ("train.lr: {type: int, low: 1, high: 5, scale: 2}", "unknown scale"),
    ("[1, 2]", "non-empty mapping"),
])
def test_bad_space_is_a_config_error(tmp_path, text, msg):
    p = tmp_path / "space.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg):
        load_space(p)


def tiny_preset(tmp_path):
    folder = write_processed(tmp_path / "tiny")
    cfg = tmp_path / "mkr.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": "mkr", "model_args": {"dim": 4},
        "data": {"dataset": str(folder), "layout": "processed"},
        "train": {"epochs": 2, "batch_size": 32, "lr": {"rec": 0.01, "kge": 0.01},
                  "schedule": [["rec", 2], ["kge", 1]], "monitor": "valid.auc", "threads": 1},
        "eval": {"protocols": ["ctr"]}, "seed": 0}))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr.rec: {type: float, low: 1.0e-3, high: 5.0e-2, log: true}\n"
                     "model_args.dim: {type: categorical, choices: [2, 4]}\n")
    return cfg, space


def test_cli_errors_exit_2(tmp_path, monkeypatch, capsys):
    cfg, space = tiny_preset(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_args.nonexistent_knob: {type: float, low: 0.1, high: 1}\n")
    common = ["--storage", f"sqlite:///{tmp_path}/s.db", "--out", tmp_path / "o"]
    assert cli(monkeypatch, "tune", cfg, "--space", bad, *common) == 2
    assert "nonexistent_knob" in capsys.readouterr().err
    assert cli(monkeypatch, "tune", cfg, "--space", tmp_path / "none.yaml", *common) == 2
    assert cli(monkeypatch, "tune", cfg, "--space", space, "--trials", "0", *common) == 2


def test_study_is_seeded_validation_only_and_writes_outputs(tmp_path, monkeypatch):
    cfg, space = tiny_preset(tmp_path)
    stages = []
    real = experiment.evaluate
    monkeypatch.setattr(experiment, "evaluate",
                        lambda *a, **k: stages.append(a[4]) or real(*a, **k))
    args = ["tune", cfg, "--space", space, "--trials", 3, "--seed", 7, "--no-prune"]
    for name in ("a", "b"):
        assert cli(monkeypatch, *args, "--storage", f"sqlite:///{tmp_path}/{name}.db",
                   "--study", "s", "--out", tmp_path / name) == 0
    assert set(stages) == {"valid"}  # the test split is never evaluated
    a, b = (optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/{n}.db")
            for n in ("a", "b"))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]  # seeded TPE
    assert [t.value for t in a.trials] == pytest.approx([t.value for t in b.trials])
    out = tmp_path / "a"
    best = load_config(out / "best.yaml")
    assert best.train.lr["rec"] == pytest.approx(a.best_params["train.lr.rec"])
    assert best.model_args["dim"] == a.best_params["model_args.dim"]
    assert f"trial {a.best_trial.number}" in best.notes["tuned"]
    assert "validation only" in best.notes["tuned"]
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,valid.auc") and len(rows) == 4
    assert (out / "history.png").stat().st_size > 1000
    assert (out / "importance.png").stat().st_size > 1000
    # rerunning a finished study adds no trial; another space under the same name is refused
    assert cli(monkeypatch, *args, "--storage", f"sqlite:///{tmp_path}/a.db", "--study", "s",
               "--out", out) == 0
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/a.db").trials) == 3
    assert cli(monkeypatch, "tune", cfg, "--space", SPACES / "mkr-lastfm.yaml", "--storage",
               f"sqlite:///{tmp_path}/a.db", "--study", "s", "--out", out) == 2


def test_pruning_reports_every_validation(tmp_path, monkeypatch):
    cfg, space = tiny_preset(tmp_path)
    storage = f"sqlite:///{tmp_path}/p.db"
    assert cli(monkeypatch, "tune", cfg, "--space", space, "--trials", 6, "--storage", storage,
               "--study", "p", "--out", tmp_path / "p", "--set", "train.epochs=4") == 0
    trials = optuna.load_study(study_name="p", storage=storage).trials
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in done)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert all(len(t.intermediate_values) < 4 for t in pruned)


def _trials(storage: str, name: str, path) -> tuple[list, list]:
    """(complete or pruned trials, running trials whose worker and parameters are recorded)
    of the study: a trial killed before drawing its parameters has nothing to retry."""
    if not path.exists():
        return [], []
    try:  # read only until the worker has created the schema: opening the storage with
        # optuna before would create it too, a second writer racing the worker
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if not db.execute("SELECT version_num FROM alembic_version").fetchall():
                return [], []
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    except Exception:  # not created yet, or the database is busy
        return [], []
    return ([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)],
            [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs
             and t.params])


def test_mkr_lastfm_study_killed_after_two_trials_resumes(real_data, tmp_path, monkeypatch):
    """Acceptance: kill -9 the command once two trials are in the storage, rerun it (here
    with a second worker in parallel): the study completes with every trial kept and
    writes the best preset."""
    space = tmp_path / "space.yaml"
    space.write_text("train.lr.rec: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    storage, n = f"sqlite:///{tmp_path}/study.db", 3
    args = ["tune", "mkr-lastfm", "--space", space, "--trials", n,
            "--storage", storage, "--study", "mkr", "--out", tmp_path / "out",
            "--data-dir", real_data, "--set", "train.epochs=1", "--set", "train.threads=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "kgrec", *map(str, args)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while True:  # two trials done and the third under way
        done, running = _trials(storage, "mkr", tmp_path / "study.db")
        if len(done) >= 2 and running:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {t.number: t.value for t in _trials(storage, "mkr", tmp_path / "study.db")[0]}
    assert len(first) >= 2 and not (tmp_path / "out" / "best.yaml").exists()

    other = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert cli(monkeypatch, *args) == 0
    assert other.wait(timeout=300) == 0, other.stderr.read().decode()

    study = optuna.load_study(study_name="mkr", storage=storage)
    done = {t.number: t.value for t in study.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert n <= len(done) <= n + 1  # the second worker may finish one trial more
    assert all(done[k] == v for k, v in first.items())  # kept as they were
    assert not study.get_trials(states=(TrialState.RUNNING,))  # the killed one was failed ...
    retried = [t for t in study.trials if "retry_of" in t.user_attrs]
    assert len(retried) == 1 and retried[0].state != TrialState.FAIL  # ... and run again
    best = load_config(tmp_path / "out" / "best.yaml")
    assert best.train.lr["rec"] == pytest.approx(study.best_params["train.lr.rec"])
    assert "study mkr" in best.notes["tuned"] and best.train.epochs == 1
    assert len((tmp_path / "out" / "trials.csv").read_text().splitlines()) == len(study.trials) + 1


def test_storage_retries_when_another_worker_creates_the_schema(tmp_path, monkeypatch):
    """Two workers opening a new storage at once: the one whose schema-version insert fails
    retries and opens the storage the other created (a worker started beside the first)."""
    from optuna import storages
    from sqlalchemy.exc import IntegrityError

    from kgrec import tuning

    real, calls = storages.RDBStorage, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(*args, **kwargs)  # the other worker's schema lands first
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE"))
        return real(*args, **kwargs)

    monkeypatch.setattr(storages, "RDBStorage", flaky)
    monkeypatch.setattr(tuning.time, "sleep", lambda s: None)
    storage = tuning._storage(f"sqlite:///{tmp_path}/study.db")
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_reclaim_fails_dead_workers_trials_and_requeues_only_drawn_parameters():
    """A trial of a dead worker is failed; its parameters are queued again once, and a trial
    killed before drawing any has nothing to queue (the study draws a new one)."""
    import socket

    from kgrec.tuning import reclaim_orphans

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker = f"{socket.gethostname()}:{dead.pid}"
    study = optuna.create_study()
    drawn = study.ask()
    drawn.suggest_float("x", 0.0, 1.0)
    drawn.set_user_attr("worker", worker)
    bare = study.ask()
    bare.set_user_attr("worker", worker)
    alive = study.ask()
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    assert sorted(reclaim_orphans(study)) == [drawn.number, bare.number]
    states = {t.number: t.state for t in study.trials}
    assert states[drawn.number] == states[bare.number] == TrialState.FAIL
    assert states[alive.number] == TrialState.RUNNING
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert [(t.system_attrs["fixed_params"], t.user_attrs["retry_of"]) for t in queued] == \
        [(drawn.params, drawn.number)]
    assert reclaim_orphans(study) == []  # once
