"""Paper-vs-measured tables: run a model's presets over seeds and record mean ± std."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from kgrec.config import load_config
from kgrec.data.registry import atomic_write_bytes
from kgrec.errors import ConfigError
from kgrec.presets import PRESET_DIR
from kgrec.training.experiment import run
from kgrec.utils import machine_description

#: Figures reported in the papers (test split), by model and dataset.
PAPER: dict[str, dict[str, dict[str, float]]] = {
    "mkr": {  # MKR Table 2
        "movie": {"auc": 0.917, "acc": 0.843},
        "book": {"auc": 0.734, "acc": 0.704},
        "lastfm": {"auc": 0.797, "acc": 0.752},
    },
    "hkrm": {"book": {"auc": 0.740, "acc": 0.683}},  # HKRM Table 2
    "hkrm-attr": {"book": {"auc": 0.709}},  # HKRM Table 3 (AUC only)
    "hkrm-item": {"book": {"auc": 0.714}},
    "hkrm-wokl": {"book": {"auc": 0.726}},
    # baselines (issue 15): MKR Table 2 (Last.FM; its Book row uses MKR's own KG) and HKRM
    # Table 2 (Book-Crossing, RippleNet's release, the `book` dataset)
    "ripplenet": {"lastfm": {"auc": 0.768, "acc": 0.691}, "book": {"auc": 0.729, "acc": 0.662}},
    "widedeep": {"lastfm": {"auc": 0.756, "acc": 0.688}},
    "ncf": {"book": {"auc": 0.725, "acc": 0.675}},
    "nfm": {"book": {"auc": 0.659, "acc": 0.620}},
}


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def update_section(path: Path, key: str, body: str) -> None:
    """Replace (or append) the block between ``<!-- key -->`` and ``<!-- /key -->``."""
    text = path.read_text() if path.exists() else "# Results\n"
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    atomic_write_bytes(path, text.encode())


def reproduce(model: str, datasets: list[str], seeds: int, out: Path, results: Path | None = None,
              data_dir: str | Path | None = None, configs: Path = PRESET_DIR,
              overrides: list[str] | None = None, key: str | None = None,
              budget: int | None = None, rows: str | None = None,
              warm_start: bool | None = None) -> str:
    """Train the preset ``MODEL-DATASET`` (a file of ``configs``, default the shipped presets)
    with seeds ``0..seeds-1`` per dataset and return a markdown table of paper vs measured
    test AUC / ACC (mean ± std); with ``results`` (a path), also write it into that file
    (block ``key``, default ``reproduce:MODEL``).
    ``overrides`` are ``--set`` strings. ``ktup`` runs the KTUP paper's Tables 2-4 instead
    (:mod:`kgrec.studies.ktup`; ``budget``: training examples per task of every run,
    ``rows``: comma-separated row labels, ``warm_start``: Section 6.3's pretrained starts)."""
    if model == "ktup":
        from kgrec.studies.ktup import reproduce_ktup, select_rows

        extra = {"budget": budget} if budget is not None else {}
        if warm_start is not None:
            extra["warm_start"] = warm_start
        return reproduce_ktup(datasets, seeds, out, results, data_dir, configs, overrides, key,
                              rows=select_rows(rows), **extra)
    if budget is not None or rows is not None or warm_start is not None:
        raise ConfigError("--budget, --rows and --[no-]warm-start are options of kgrec reproduce ktup")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if not datasets:
        raise ConfigError("--datasets names no dataset")
    overrides = list(overrides or [])
    rows, devices = [], []
    for ds in datasets:
        preset = configs / f"{model}-{ds}.yaml"
        if not preset.is_file():
            raise ConfigError(f"{preset}: no preset for {model} on {ds}")
        measured: dict[str, list[float]] = {"auc": [], "acc": []}
        secs, epochs = [], []
        for seed in range(seeds):
            cfg = load_config(preset, [*overrides, f"seed={seed}"])
            tag = "-".join(o.replace("=", "_").replace(".", "_") for o in overrides)
            m = run(cfg, out / f"{model}-{ds}-s{seed}{'-' + tag if tag else ''}", data_dir,
                    progress=False)
            for metric in measured:
                measured[metric].append(m["test"][metric])
            secs.append(m["train_seconds"])
            epochs.append(m["best_epoch"])
            devices.append(cfg.train.device)
        paper = PAPER.get(model, {}).get(ds, {})
        rows.append(
            f"| {model} | {ds} | {cfg.train.monitor} | {paper.get('auc', '-')} | {_fmt(measured['auc'])} | "
            f"{paper.get('acc', '-')} | {_fmt(measured['acc'])} | {statistics.median(secs):.1f} | "
            f"{statistics.median(epochs):g} |")
    sets = "".join(f" --set {o}" for o in overrides)
    table = "\n".join([
        f"Test AUC / ACC over seeds 0..{seeds - 1} (mean ± std), epoch selected on the validation "
        f"metric shown; "
        f"`kgrec reproduce {model} --seeds {seeds} --datasets {','.join(datasets)}{sets}`, "
        f"{'; '.join(machine_description(d) for d in dict.fromkeys(devices))}, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| model | dataset | selected on | paper AUC | measured AUC | paper ACC | measured ACC "
        "| train s (median) | best epoch (median) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    if results is not None:
        update_section(results, key or f"reproduce:{model}", table)
    return table
