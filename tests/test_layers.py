"""The layout's layering: lower layers (data, models, evaluation, the collectives) never
import upper ones (training, the interfaces), not even lazily inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kgrec"
UPPER = ("kgrec.training", "kgrec.cli", "kgrec.api", "kgrec.serve", "kgrec.recommend",
         "kgrec.reproduce", "kgrec.studies", "kgrec.tuning")
LOWER = [*sorted((SRC / "data").rglob("*.py")), *sorted((SRC / "models").rglob("*.py")),
         *sorted((SRC / "evaluation").rglob("*.py")), SRC / "parallel.py", SRC / "runtime.py"]


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", LOWER, ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_import_no_upper_layer(path):
    bad = sorted(n for n in imported(path) if n.startswith(UPPER) or n == "kgrec.training")
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"
