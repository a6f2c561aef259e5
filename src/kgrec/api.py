"""The Python API: train a preset (or any config) and get a :class:`Result` back, or load one
from a run folder.

>>> import kgrec
>>> r = kgrec.train("mkr-lastfm", out="runs/quick", train__epochs=2)   # doctest: +SKIP
>>> r.metrics["test"]["auc"], r.recommend("2", k=5)                     # doctest: +SKIP
>>> kgrec.load("runs/quick").history                                     # doctest: +SKIP

A training run is the CLI's ``kgrec train``: the same config validation, the same run folder
(``config.yaml``, ``checkpoint.pt``, ``model.pt``, ``metrics.json``), the same resume.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kgrec.errors import ConfigError, DataError

__all__ = ["Result", "load", "plot_training_curves", "train"]


def _override_strings(overrides: dict[str, Any]) -> list[str]:
    """``train__epochs=3`` -> ``"train.epochs=3"``: the value JSON-encoded (JSON is YAML, so
    :func:`kgrec.config.apply_overrides` reads back lists, dicts, numbers and strings)."""
    out = []
    for key, value in overrides.items():
        if isinstance(value, Path):
            value = str(value)
        try:
            text = json.dumps(value)
        except TypeError:
            raise ConfigError(f"override {key}: cannot use a value of type "
                              f"{type(value).__name__}") from None
        out.append(f"{key.replace('__', '.')}={text}")
    return out


def default_run_dir(cfg) -> Path:
    """The CLI's default run folder, ``runs/MODEL-DATASET-sSEED``."""
    return Path("runs") / f"{cfg.model}-{Path(cfg.data.dataset).name}-s{cfg.seed}"


def train(preset_or_config: str | Path | dict | Any, *, out: str | Path | None = None,
          data_dir: str | Path | None = None, seed: int | None = None,
          progress: bool | None = None, resume: bool = True, set: list[str] | None = None,
          **overrides: Any) -> Result:
    """Train like ``kgrec train``: select the epoch on validation, test once, write the run
    folder; return its :class:`Result`.

    Args:
        preset_or_config: a preset name (``"mkr-lastfm"``; ``kgrec presets`` lists them), a
            YAML file, a config ``dict`` or a :class:`kgrec.config.RunConfig`.
        out: run folder (default ``runs/MODEL-DATASET-sSEED``, as the CLI).
        data_dir: data folder (default ``$KGREC_DATA``, then the user cache; Last.FM falls
            back to the copy shipped with kgrec).
        seed: overrides the config's seed.
        progress: progress bar (default: when stderr is a terminal).
        resume: continue from ``out/checkpoint.pt`` when it was written by the same config.
        set: ``"key.sub=value"`` strings, as ``--set`` on the command line.
        **overrides: the same with ``__`` for the dots, ``train__epochs=3``,
            ``model_args__dim=8`` (applied after ``set``).
    """
    from kgrec.config import RunConfig, load_config
    from kgrec.runtime import tune_allocator
    from kgrec.training.experiment import run

    tune_allocator()  # freed memory stays in the process; KGREC_MALLOC=default opts out
    strings = [*(set or []), *_override_strings(overrides)]
    if seed is not None:
        strings.append(f"seed={int(seed)}")
    if isinstance(preset_or_config, RunConfig):
        cfg = load_config(raw=preset_or_config.model_dump(mode="json"), overrides=strings)
    elif isinstance(preset_or_config, dict):
        cfg = load_config(raw=preset_or_config, overrides=strings)
    elif isinstance(preset_or_config, str | Path):
        from kgrec.presets import resolve_config

        cfg = load_config(resolve_config(preset_or_config), strings)
    else:
        raise ConfigError(f"train() takes a preset name, a YAML path, a dict or a RunConfig, "
                          f"not {type(preset_or_config).__name__}")
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    metrics = run(cfg, run_dir, data_dir, resume=resume, progress=progress)
    return Result(run_dir, cfg, metrics, data_dir)


def load(run_dir: str | Path, data_dir: str | Path | None = None) -> Result:
    """The :class:`Result` of a finished run folder (its ``model.pt`` and ``metrics.json``);
    the data is read again, from ``data_dir`` or the defaults, when the model or its
    recommendations are first asked for."""
    from kgrec.config import RunConfig
    from kgrec.training.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    model_file = run_dir / "model.pt"
    if not model_file.is_file():
        raise DataError(model_file, None, "not a finished run folder (no model.pt)")
    cfg = RunConfig.model_validate(load_checkpoint(model_file)["config"])
    metrics_file = run_dir / "metrics.json"
    try:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except json.JSONDecodeError as e:
        raise DataError(metrics_file, e.lineno, f"not valid JSON: {e.msg}") from None
    return Result(run_dir, cfg, metrics, data_dir)


class Result:
    """A finished run: its ``metrics``, per-epoch ``history``, ``config`` and ``run_dir``;
    the ``model`` (validation-best weights), ``dataset`` and ``split`` are loaded from the run
    folder on first use, and recommendations and explanations go through one
    :class:`kgrec.recommend.Recommender` built then."""

    def __init__(self, run_dir: Path, config, metrics: dict[str, Any],
                 data_dir: str | Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.metrics = metrics
        self.data_dir = data_dir
        self._recommender = None

    def __repr__(self) -> str:
        test = " ".join(f"{k}={v:.4f}" for k, v in self.metrics.get("test", {}).items()
                        if isinstance(v, float))
        return f"Result({self.config.model} on {self.config.data.dataset}, {self.run_dir}: {test})"

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per epoch: ``epoch``, each task's loss, the validation metrics (on epochs
        that validated) and whatever else the trainer records."""
        return list(self.metrics.get("history", []))

    @property
    def recommender(self):
        """The :class:`~kgrec.recommend.Recommender` of this run (built once)."""
        if self._recommender is None:
            from kgrec.recommend import Recommender

            self._recommender = Recommender.from_run(self.run_dir, self.data_dir)
        return self._recommender

    @property
    def model(self):
        return self.recommender.model

    @property
    def dataset(self):
        return self.recommender.dataset

    @property
    def split(self):
        return self.recommender.split

    def recommend(self, user: str | int, k: int = 10, explain: bool = False,
                  exclude_seen: bool = True) -> list[dict[str, Any]]:
        """Top-``k`` items for ``user`` (the data's own id), not among the user's training
        and validation positives unless ``exclude_seen=False``; see
        :meth:`kgrec.recommend.Recommender.recommend`."""
        return self.recommender.recommend(user, k, explain=explain, exclude_seen=exclude_seen)

    def explain(self, user: str | int, item: str | int) -> dict[str, Any]:
        """The model's explanation of one ``(user, item)`` score."""
        return self.recommender.explain(user, item)

    def score(self, users: list[str | int], items: list[str | int]):
        """Scores of ``(users[k], items[k])``."""
        return self.recommender.score(users, items)

    def plot(self, path: str | Path | None = None):
        """Training curves: each task's loss and the validation metric per epoch (the
        monitored one drawn bold). Returns the matplotlib ``Figure``; writes it to ``path``
        (format from the suffix) when given."""
        monitor = self.config.train.monitor.split(".", 1)[-1]
        return plot_training_curves(self.history, monitor, path,
                                    title=f"{self.config.model} on {self.config.data.dataset}",
                                    best_epoch=self.metrics.get("best_epoch"))

    def save(self, directory: str | Path) -> Path:
        """Copy the run folder's files into ``directory`` (written atomically); returns it."""
        from kgrec.data.registry import atomic_write_bytes

        dest = Path(directory)
        if dest.resolve() == self.run_dir.resolve():
            return dest
        for f in sorted(self.run_dir.rglob("*")):
            if f.is_file():
                atomic_write_bytes(dest / f.relative_to(self.run_dir), f.read_bytes())
        return dest


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Epochs (1-based) and finite values of ``key`` in ``history``."""
    xs, ys = [], []
    for k, row in enumerate(history):
        v = row.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(int(row.get("epoch", k)) + 1)
            ys.append(float(v))
    return xs, ys


def _metric_name(key: str) -> str | None:
    """``valid_auc``/``valid.auc``/``valid/auc`` -> ``auc``; other keys -> ``None``."""
    if key.startswith("valid") and len(key) > 6 and key[5] in "_./":
        return key[6:]
    return None


def plot_training_curves(history: list[dict[str, Any]], monitor: str | None = None,
                         path: str | Path | None = None, title: str | None = None,
                         best_epoch: int | None = None):
    """A matplotlib ``Figure`` of a run's ``history``: left, each task's loss per epoch (every
    numeric ``loss*`` field); right, the validation metrics per validated epoch, ``monitor``
    bold, the selected epoch dashed. Drawn without pyplot (no global backend change); written
    atomically to ``path`` when given (format from its suffix)."""
    import os
    import tempfile

    from matplotlib.figure import Figure

    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    loss_keys = [k for k in keys if k.startswith("loss") and _series(history, k)[0]]
    valid_keys = [k for k in keys if _metric_name(k) and _series(history, k)[0]]
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_val = fig.subplots(1, 2)
    for k in loss_keys:
        xs, ys = _series(history, k)
        label = k[4:].lstrip("_./") or "loss"
        ax_loss.plot(xs, ys, marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", title="training loss per task")
    for k in valid_keys:
        xs, ys = _series(history, k)
        name = _metric_name(k)
        bold = name == monitor
        ax_val.plot(xs, ys, marker="o", markersize=4 if bold else 2, linewidth=2.5 if bold else 1,
                    alpha=1.0 if bold else 0.6, label=f"{name} (selection)" if bold else name)
    if best_epoch:
        ax_val.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="selected epoch")
    ax_val.set(xlabel="epoch", ylabel="validation metric", title="validation")
    for ax, has in ((ax_loss, loss_keys), (ax_val, valid_keys)):
        if has:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=120)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return fig
