"""Shared fixtures: the real data folder and small synthetic datasets written by the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("KGREC_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(1)


def load_benchmark(name: str):
    """The script ``benchmarks/NAME.py`` as a module (registered in ``sys.modules``, which
    dataclasses defined in it need)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session writes its preprocessing cache to a temporary folder."""
    monkeypatch.setenv("KGREC_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def real_data() -> Path:
    if not (DATA / "lastfm" / "kg.txt").is_file():
        pytest.skip(f"real data not found under {DATA} (set KGREC_DATA)")
    return DATA


def write_processed(folder: Path, n_users=30, n_items=40, n_extra_entities=20, n_relations=3,
                    seed=0) -> Path:
    """A small processed-layout dataset with learnable structure: users like items of
    their own cluster; items of a cluster share KG tails."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    user_c = rng.integers(0, 2, n_users)
    item_c = np.arange(n_items) % 2
    rows = []
    for u in range(n_users):
        liked = np.flatnonzero(item_c == user_c[u])
        pos = rng.choice(liked, size=6, replace=False)
        neg = rng.choice(np.flatnonzero(item_c != user_c[u]), size=6, replace=False)
        rows += [(u, i, 1) for i in pos] + [(u, i, 0) for i in neg]
    triples = []
    for i in range(n_items):
        for r in range(n_relations):
            t = n_items + (item_c[i] * 10 + rng.integers(0, n_extra_entities // 2)) % n_extra_entities
            triples.append((i, r, t))
    (folder / "ratings_final.txt").write_text("".join(f"{u}\t{i}\t{y}\n" for u, i, y in rows))
    (folder / "kg_final.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples))
    return folder


@pytest.fixture
def tiny_processed(tmp_path) -> Path:
    return write_processed(tmp_path / "tiny")


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``kgrec ARGS`` through ``kgrec.cli.main()``: (exit code, stdout, stderr)."""
    from kgrec.cli import main

    monkeypatch.setattr(sys, "argv", ["kgrec", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
