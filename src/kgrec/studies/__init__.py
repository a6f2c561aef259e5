"""A paper's experiments as commands: ``kgrec reproduce MODEL --study NAME``.

Each model with studies has a module here (``kgrec.studies.mkr``, ...) whose ``STUDIES``
maps a study name to a :class:`Study`; :data:`MODULES` lists those modules by model.
:func:`run_study` runs one study over the datasets and seeds asked for (every training
run is a run folder under ``--out``, named like ``kgrec reproduce``'s so the two share
finished runs), then writes its markdown table ``OUT/MODEL-NAME.md`` and its figure
``OUT/MODEL-NAME.png`` (ours beside the paper's values; with ``--key KEY``, named after KEY).
With ``results`` (``--write-results docs/results.md``) the table also goes into that file,
block ``MODEL:study:NAME`` (or KEY), and the figure into ``figures/`` beside it; nothing is
written there by default.
"""

from __future__ import annotations

import importlib
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kgrec.config import RunConfig, load_config
from kgrec.data.registry import atomic_write_bytes, ensure_dir
from kgrec.errors import ConfigError
from kgrec.presets import PRESET_DIR
from kgrec.utils import machine_description

#: model -> module holding its ``STUDIES``
MODULES = {"mkr": "kgrec.studies.mkr"}


@dataclass
class StudyResult:
    """What a study produced: a title, notes (readings, where the paper's values come
    from), the markdown table and a function drawing the figure into a path."""

    title: str
    notes: str
    table: str
    plot: Callable[[Path], Path]


@dataclass(frozen=True)
class Study:
    """A named experiment: ``run(ctx)`` trains what it needs through ``ctx`` and returns
    a :class:`StudyResult`; ``seeds`` is its default number of seeds."""

    name: str
    summary: str
    run: Callable[[StudyContext], StudyResult]
    seeds: int = 1
    sweeps: bool = False  # takes --values


@dataclass
class StudyContext:
    """Datasets, seeds and where runs go, shared by a study's training runs."""

    model: str
    datasets: list[str]
    seeds: int
    out: Path
    data_dir: str | Path | None = None
    configs: Path = PRESET_DIR
    overrides: list[str] = field(default_factory=list)
    values: list[float] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def sweep(self, default: tuple, integer: bool = False) -> tuple:
        """The values of the study's sweep: ``--values`` if given, else ``default``."""
        if self.values is None:
            return default
        if integer:
            bad = [v for v in self.values if not float(v).is_integer() or v < 1]
            if bad:
                raise ConfigError(f"--values: this study sweeps positive integers, got {bad[0]:g}")
            return tuple(int(v) for v in self.values)
        return tuple(float(v) for v in self.values)

    def preset(self, name: str) -> Path:
        path = self.configs / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: no preset {name!r} (the study needs it)")
        return path

    def config(self, preset: str, seed: int, extra: list[str] | tuple[str, ...] = ()) -> RunConfig:
        """The preset with the study's ``extra`` overrides, then the user's ``--set``."""
        return load_config(self.preset(preset), [*extra, *self.overrides, f"seed={seed}"])

    def run_dir(self, preset: str, seed: int, extra: list[str] | tuple[str, ...] = (),
                suffix: str = "") -> Path:
        """``OUT/PRESET-sSEED[-extra][-overrides]``; the overrides' part is spelled as
        ``kgrec reproduce`` spells it, so a study reuses ``reproduce``'s finished runs."""
        tags = [_tag(o) for o in extra] + [o.replace("=", "_").replace(".", "_")
                                           for o in self.overrides]
        name = f"{preset}-s{seed}{suffix}" + "".join(f"-{t}" for t in tags)
        return self.out / name

    def train(self, preset: str, seed: int, extra: list[str] | tuple[str, ...] = ()
              ) -> tuple[dict[str, Any], Path]:
        """Train (or resume / reuse) one run; its metrics and folder."""
        from kgrec.training.experiment import run

        cfg = self.config(preset, seed, extra)
        folder = self.run_dir(preset, seed, extra)
        metrics = _finished(folder, cfg)
        if metrics is None:
            metrics = run(cfg, folder, self.data_dir, progress=False)
        self.runs.append(metrics)
        self.devices.append(cfg.train.device)
        return metrics, folder

    def budget(self) -> str:
        """Training examples seen per task (median over the study's runs) and run count."""
        if not self.runs:
            return "no training run"
        tasks = sorted({t for m in self.runs for t in m.get("examples", {})})
        seen = ", ".join(f"{t} {statistics.median(m['examples'].get(t, 0) for m in self.runs):,.0f}"
                         for t in tasks)
        epochs = statistics.median(m.get("epochs", 0) for m in self.runs)
        runs = f"{len(self.runs)} training run{'s' if len(self.runs) > 1 else ''}"
        return (f"{runs}; examples seen per run (median): {seen}; "
                f"epochs run (median) {epochs:g}, each preset's epoch cap with early stopping on "
                "its validation metric")


def _finished(folder: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The metrics of a finished run of ``cfg`` in ``folder`` (``None`` if there is none):
    a study re-rendered from finished runs trains and evaluates nothing again."""
    try:
        saved = yaml.safe_load((folder / "config.yaml").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if saved != cfg.model_dump(mode="json") or "finished" not in metrics:
        return None
    return metrics


def _tag(override: str) -> str:
    out = "".join(c if c.isalnum() or c == "." else "_" for c in override.replace(" ", ""))
    return "_".join(p for p in out.replace(".", "_").split("_") if p)


def studies_of(model: str) -> dict[str, Study]:
    """The studies of ``model`` (empty if it has none)."""
    module = MODULES.get(model)
    return importlib.import_module(module).STUDIES if module else {}


def check_study(model: str, name: str) -> Study:
    studies = studies_of(model)
    if name not in studies:
        known = ", ".join(studies) if studies else "none"
        raise ConfigError(f"--study {name}: {model!r} has no such study (its studies: {known})")
    return studies[name]


def run_study(model: str, name: str, datasets: list[str], seeds: int | None, out: Path,
              results: Path | None = None, data_dir: str | Path | None = None,
              configs: Path = PRESET_DIR, overrides: list[str] | None = None,
              key: str | None = None, values: list[float] | None = None) -> str:
    """Run study ``name`` of ``model``; write ``OUT/MODEL-NAME.md`` and ``.png``; with
    ``results``, also the block ``key`` (default ``MODEL:study:NAME``) of that markdown file
    and ``figures/MODEL-NAME.png`` beside it. Returns the markdown written."""
    study = check_study(model, name)
    seeds = study.seeds if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if not datasets:
        raise ConfigError("--datasets names no dataset")
    if values is not None and (not study.sweeps or not values):
        raise ConfigError(f"--values: the study {name!r} sweeps no values" if not study.sweeps
                          else "--values names no value")
    overrides = list(overrides or [])
    ctx = StudyContext(model, datasets, seeds, Path(out), data_dir, Path(configs), overrides,
                       values)
    res = study.run(ctx)
    stem = f"{model}-{name}" if key is None else "".join(
        c if c.isalnum() or c == "-" else "-" for c in key.replace(f"{model}:study:", f"{model}-"))
    sets = "".join(f" --set {o}" for o in overrides)
    vals = f" --values {','.join(f'{v:g}' for v in values)}" if values else ""
    machines = "; ".join(machine_description(d) for d in dict.fromkeys(ctx.devices or ["cpu"]))

    def body(figure: str) -> str:
        return "\n".join([
            f"### {res.title}", "",
            f"`kgrec reproduce {model} --study {name} --seeds {seeds} --datasets "
            f"{','.join(datasets)}{vals}{sets}`, {machines}, {time.strftime('%Y-%m-%d')}; seeds "
            f"0..{seeds - 1}; {ctx.budget()}; no validation grid (the presets' settings, the study's "
            "own sweep aside).", "",
            res.notes.strip(), "",
            res.table.strip(), "",
            f"![{res.title}]({figure})", ""])

    ensure_dir(ctx.out)
    res.plot(ctx.out / f"{stem}.png")
    text = body(f"{stem}.png")
    atomic_write_bytes(ctx.out / f"{stem}.md", text.encode())
    if results is not None:
        from kgrec.reproduce import update_section

        figures = ensure_dir(Path(results).parent / "figures")
        tmp = figures / f".{stem}.png.tmp"
        shutil.copyfile(ctx.out / f"{stem}.png", tmp)
        tmp.replace(figures / f"{stem}.png")
        text = body(f"figures/{stem}.png")
        update_section(Path(results), key or f"{model}:study:{name}", text)
    return text
