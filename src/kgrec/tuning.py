"""Hyper-parameter search with Optuna over :func:`kgrec.training.experiment.run`.

``kgrec tune CONFIG --space SPACE.yaml --trials N --storage sqlite:///study.db --study NAME``
(CONFIG: a preset name or a YAML file)

* Search space: a YAML mapping of dotted config keys to distributions,
  ``train.lr.rec: {type: float, low: 1e-4, high: 1e-2, log: true}``; ``type`` is
  ``float`` or ``int`` (``low``, ``high``, optional ``log``/``step``) or ``categorical``
  (``choices``). Spaces for the presets' main knobs ship in ``kgrec/presets/spaces/``
  (``--space`` defaults to the one named like CONFIG).
* Sampler: TPE, re-seeded for every trial from ``(seed, trial number)``, so a study is
  reproducible from its seed and history and parallel workers never draw the same
  start-up points.
* Objective: the config's monitored validation metric (``train.monitor``) of the
  validation-best epoch. Trials run with ``evaluate_test=False``: the test split is
  never evaluated during a study. Every validation is reported to the pruner
  (``MedianPruner``), which can stop a trial after that epoch.
* Storage: any Optuna URL; SQLite gets a long lock timeout so several workers (processes
  or machines on a shared file) can run the same command in parallel. The study runs
  until ``N`` trials are complete or pruned, counting those already in the storage:
  rerunning a killed command continues it. A trial left ``RUNNING`` by a killed worker
  of this machine (its pid is gone) is marked failed and its parameters are queued
  again; other machines' (and one killed before it recorded its pid) are failed and
  retried through Optuna's heartbeat once it is ``4 * HEARTBEAT_S`` seconds old.
* Outputs (``--out``, default ``runs/tune-NAME``): ``best.yaml`` (the best trial's
  configuration as a preset, with its provenance in ``notes``), ``trials.csv`` and
  ``trials.md``, ``history.png`` (optimisation history) and ``importance.png``
  (fANOVA parameter importances, with at least two complete trials); the trials' run
  folders are ``trials/NNNN``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

import kgrec
from kgrec.config import apply_overrides, load_config
from kgrec.data.registry import atomic_write_bytes
from kgrec.errors import ConfigError, KGRecError
from kgrec.presets import resolve_config

SPACES = Path(kgrec.__file__).resolve().parent / "presets" / "spaces"
TYPES = ("float", "int", "categorical")
HEARTBEAT_S = 30


def default_space(config: str | Path) -> Path:
    """The shipped search space named like the preset ``config`` (``mkr-lastfm.yaml``)."""
    return SPACES / f"{Path(config).stem}.yaml"


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a search-space YAML; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: search space not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{p}: expected a non-empty mapping of config keys to distributions")
    space: dict[str, dict[str, Any]] = {}
    for key, spec in raw.items():
        where = f"{p}: {key}"
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise ConfigError(f"{where}: expected a mapping with type one of {', '.join(TYPES)}")
        spec = dict(spec)
        if spec["type"] == "categorical":
            if set(spec) != {"type", "choices"} or not isinstance(spec["choices"], list) \
                    or not spec["choices"]:
                raise ConfigError(f"{where}: categorical needs exactly a non-empty 'choices' list")
        else:
            extra = set(spec) - {"type", "low", "high", "log", "step"}
            if extra or "low" not in spec or "high" not in spec:
                raise ConfigError(f"{where}: {spec['type']} needs low and high "
                                  f"(optional log, step){'; unknown ' + ', '.join(extra) if extra else ''}")
            try:
                cast = float if spec["type"] == "float" else int
                lo, hi = cast(spec["low"]), cast(spec["high"])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: low and high must be numbers") from None
            if not lo < hi:
                raise ConfigError(f"{where}: low must be below high")
            if spec.get("log") and lo <= 0:
                raise ConfigError(f"{where}: a log scale needs low > 0")
            if spec.get("log") and spec.get("step") is not None:
                raise ConfigError(f"{where}: log and step cannot be combined")
            spec["low"], spec["high"] = lo, hi
        space[str(key)] = spec
    return space


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per key of ``space`` from ``trial``."""
    out: dict[str, Any] = {}
    for key, s in space.items():
        if s["type"] == "categorical":
            out[key] = trial.suggest_categorical(key, s["choices"])
        elif s["type"] == "float":
            out[key] = trial.suggest_float(key, s["low"], s["high"], log=bool(s.get("log")),
                                           step=s.get("step"))
        else:
            out[key] = trial.suggest_int(key, s["low"], s["high"], log=bool(s.get("log")),
                                         step=s.get("step") or 1)
    return out


def as_overrides(params: dict[str, Any]) -> list[str]:
    """``key=value`` overrides (values as JSON, which the YAML parser reads back)."""
    return [f"{k}={json.dumps(v)}" for k, v in params.items()]


def direction(monitor: str) -> str:
    return "minimize" if monitor.rsplit(".", 1)[-1] == "mean_rank" else "maximize"


def _storage(url: str):
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    kwargs = {"connect_args": {"timeout": 300}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, OperationalError

    def open_storage() -> RDBStorage:
        with warnings.catch_warnings():  # the heartbeat is flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                              grace_period=4 * HEARTBEAT_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(1))

    try:
        for attempt in range(4):
            try:
                return open_storage()
            except (IntegrityError, OperationalError):
                # two workers creating a new storage's schema at once: the loser's insert of
                # the schema version fails; the schema is there now, so a retry opens it
                time.sleep(0.5 * (attempt + 1))
        return open_storage()
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
        raise ConfigError(f"--storage {url}: {e}") from None


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_orphans(study) -> list[int]:
    """Fail the ``RUNNING`` trials of dead workers of this machine and queue their
    parameters again (once per trial; a trial killed before its parameters were drawn has
    none to queue, and the study draws a new one in its place); returns their numbers."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    done = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        h, _, pid = worker.rpartition(":")
        if h != host or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except Exception:  # UpdateFinishedTrialError, a busy database: another worker got there
            continue
        if t.params and "retry_of" not in t.user_attrs:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        done.append(t.number)
    return done


def tune(config: str | Path, space_path: str | Path | None, trials: int, storage: str,
         study_name: str, out: str | Path | None = None, seed: int = 0,
         overrides: list[str] | None = None, data_dir: str | Path | None = None,
         pruning: bool = True, log=print) -> dict[str, Any]:
    """Run (or continue) the study until ``trials`` trials are complete or pruned, then
    write the outputs; returns a summary (best trial, value, paths)."""
    import optuna
    from optuna.trial import TrialState

    from kgrec.training.experiment import run

    if trials < 1:
        raise ConfigError(f"--trials must be positive, got {trials}")
    config = resolve_config(config)
    overrides = list(overrides or [])
    base = load_config(config, overrides)  # validates the config before any trial
    space_path = Path(space_path) if space_path else default_space(config)
    space = load_space(space_path)
    for key in space:  # every key must be settable on this config
        try:
            load_config(config, [*overrides, *as_overrides({key: _example(space[key])})])
        except ConfigError as e:
            raise ConfigError(f"{space_path}: {key}: not a valid key for {config}: {e}") from None
    monitor = base.train.monitor
    key = monitor.split(".", 1)[1]
    out = Path(out) if out else Path("runs") / f"tune-{study_name}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=_storage(storage),
                                direction=direction(monitor), load_if_exists=True)
    resolved = base.model_dump(mode="json")
    if study.user_attrs.get("config") not in (None, resolved) or \
            study.user_attrs.get("space") not in (None, space):
        raise ConfigError(f"study {study_name!r} in {storage} was started with another config, "
                          f"--set or space ({study.user_attrs.get('config_file')}); use another --study")
    study.set_user_attr("config", resolved)
    study.set_user_attr("config_file", str(config))
    study.set_user_attr("space", space)
    study.set_user_attr("monitor", monitor)
    study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
                    if pruning else optuna.pruners.NopPruner())
    reclaimed = reclaim_orphans(study)
    if reclaimed:
        queued = sorted(t.user_attrs["retry_of"] for t in study.get_trials(deepcopy=False)
                        if t.user_attrs.get("retry_of") in reclaimed)
        log(f"trials {reclaimed} of a killed worker: failed"
            + (f"; parameters of {queued} queued again" if queued else
               " before drawing parameters (nothing to queue)"))
    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    def objective(trial) -> float:
        # a fresh sampler per trial, seeded from (seed, trial number): TPE reads the history
        # from the storage, so only its random state matters
        trial.study.sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + trial.number) % 2**32)
        trial.set_user_attr("worker", _worker_id())
        params = suggest(trial, space)
        cfg = load_config(config, [*overrides, *as_overrides(params)])
        run_dir = out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(run_dir))

        def report(epoch: int, metrics: dict[str, float]) -> None:
            value = metrics.get(key, math.nan)
            if math.isfinite(value):
                trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch + 1}: {monitor} {value:.4f}")

        m = run(cfg, run_dir, data_dir, resume=False, progress=False, evaluate_test=False,
                on_validate=report)
        trial.set_user_attr("best_epoch", m["best_epoch"])
        trial.set_user_attr("epochs", m["epochs"])
        trial.set_user_attr("train_seconds", m["train_seconds"])
        return float(m["valid"][key])

    def progress(study, t) -> None:
        value = "" if t.value is None else f" {monitor}={t.value:.4f}"
        log(f"trial {t.number}: {t.state.name.lower()}{value} "
            f"{' '.join(as_overrides(t.params))}")

    attempts = 0
    while _count(study, finished) < trials:
        attempts += 1
        if attempts > 3 * trials + 10:
            raise KGRecError(f"study {study_name!r}: too many failed trials; see the log")
        study.optimize(objective, n_trials=1, callbacks=[progress], catch=(FloatingPointError,),
                       gc_after_trial=False)
    return write_outputs(study, config, space_path, space, out, overrides, storage, log)


def _example(spec: dict[str, Any]) -> Any:
    return spec["choices"][0] if spec["type"] == "categorical" else spec["low"]


def _count(study, states) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def write_outputs(study, config: Path, space_path: Path, space: dict, out: Path,
                  overrides: list[str], storage: str, log=print) -> dict[str, Any]:
    """``best.yaml``, ``trials.csv``/``trials.md``, ``history.png``, ``importance.png``."""
    from optuna.trial import TrialState

    out.mkdir(parents=True, exist_ok=True)
    all_trials = study.get_trials(deepcopy=False)
    complete = [t for t in all_trials if t.state == TrialState.COMPLETE]
    monitor = study.user_attrs.get("monitor", "value")
    _write_table(all_trials, list(space), monitor, out)
    _plot_history(complete, study.direction.name.lower(), monitor, out / "history.png")
    summary: dict[str, Any] = {"study": study.study_name, "trials": len(all_trials),
                               "complete": len(complete), "out": str(out)}
    if len(complete) >= 2:
        try:
            _plot_importance(study, out / "importance.png")
        except (RuntimeError, ValueError) as e:  # e.g. every trial with the same parameters
            log(f"no importance plot: {e}")
    if not complete:
        log("no complete trial: no best preset written")
        return summary
    best = study.best_trial
    raw = yaml.safe_load(config.read_text()) or {}
    raw = apply_overrides(raw, [*overrides, *as_overrides(best.params)])
    notes = dict(raw.get("notes") or {})
    date = time.strftime("%Y-%m-%d", time.gmtime())
    for k in best.params:
        notes[k] = f"kgrec tune: study {study.study_name}, trial {best.number} ({date})"
    notes["tuned"] = (f"kgrec tune {config} --space {space_path} --study {study.study_name} "
                      f"--storage {storage}: best of {len(complete)} complete trials, trial "
                      f"{best.number}, {monitor} = {best.value:.6g} (validation only), {date}; "
                      f"space {json.dumps(space)}"
                      + (f"; fixed {' '.join(overrides)}" if overrides else ""))
    raw["notes"] = notes
    load_config(raw=raw)  # the preset is a valid config
    atomic_write_bytes(out / "best.yaml", yaml.safe_dump(raw, sort_keys=False).encode())
    summary.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                   preset=str(out / "best.yaml"))
    return summary


def _write_table(trials, keys: list[str], monitor: str, out: Path) -> None:
    cols = ["trial", "state", monitor, "best_epoch", "epochs", "seconds", *keys]
    rows = []
    for t in trials:
        secs = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append([t.number, t.state.name.lower(), t.value, t.user_attrs.get("best_epoch"),
                     t.user_attrs.get("epochs"), None if secs is None else round(secs, 1),
                     *(t.params.get(k) for k in keys)])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([cols, *rows])
    atomic_write_bytes(out / "trials.csv", buf.getvalue().encode())

    def fmt(v):
        return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    atomic_write_bytes(out / "trials.md", ("\n".join(md) + "\n").encode())


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot_history(complete, direction_: str, monitor: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if complete:
        x = np.array([t.number for t in complete])
        y = np.array([t.value for t in complete], dtype=float)
        best = np.maximum.accumulate(y) if direction_ == "maximize" else np.minimum.accumulate(y)
        ax.plot(x, y, "o", label="trial")
        ax.step(x, best, where="post", label="best so far")
        ax.legend()
    ax.set_xlabel("trial")
    ax.set_ylabel(monitor)
    ax.set_title("optimisation history (complete trials)")
    fig.tight_layout()
    _save(fig, path)


def _plot_importance(study, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    imp = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(6, 1.5 + 0.4 * len(names)))
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("fANOVA importance")
    ax.set_title("parameter importance")
    fig.tight_layout()
    _save(fig, path)
