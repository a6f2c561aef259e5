"""Presets shipped with the package: one YAML run configuration per (model, dataset),
each value with its source in ``notes``.

``kgrec train NAME`` and ``kgrec.train("NAME")`` accept a preset name (``mkr-lastfm``, with
or without ``.yaml``) or the path of any YAML file; an existing file path wins.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from kgrec.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted (search spaces under ``spaces/`` excluded)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The file of preset ``name`` (``.yaml`` optional); :class:`ConfigError` listing close
    matches when there is none."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = PRESET_DIR / f"{stem}.yaml"
    if stem and "/" not in stem and "\\" not in stem and path.is_file():
        return path
    names = list_presets()
    close = difflib.get_close_matches(Path(stem).name, names, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"{name}: config file not found, and no preset has that name{hint} "
                      f"(`kgrec presets` lists the {len(names)} presets)")


def describe(name: str) -> str:
    """The preset's first comment line (what it runs, after which paper), or ``""``."""
    first = preset_path(name).read_text().split("\n", 1)[0]
    return first.lstrip("#").strip() if first.startswith("#") else ""


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file: ``name_or_path`` itself when it is an existing file, else the preset of
    that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    return preset_path(str(name_or_path))
