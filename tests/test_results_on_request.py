"""``kgrec reproduce`` prints its table and writes a results file only when asked; the
machine line is read from the machine."""

from __future__ import annotations

import pytest
import torch

from kgrec import cli
from kgrec.utils import cpu_cores, cpu_model, machine_description


def test_machine_description_reads_the_machine():
    text = machine_description()
    assert cpu_model() in text and f"({cpu_cores()} cores)" in text
    assert f"torch {torch.__version__}" in text and text.endswith("device cpu")
    assert "2-core CPU" not in text or cpu_cores() == 2


def _reproduce(tmp_path, monkeypatch, capsys, *extra: str) -> str:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "mkr", "--seeds", "1", "--datasets", "tiny", "--out", "runs",
                  "--set", "train.epochs=1", "--configs", "configs", *extra])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.fixture
def project(tmp_path, tiny_processed):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mkr-tiny.yaml").write_text(
        f"model: mkr\nmodel_args: {{dim: 4, n_low_layers: 1}}\n"
        f"data: {{dataset: {tiny_processed}, layout: processed}}\n"
        "train: {epochs: 2, batch_size: 64, lr: {rec: 0.02, kge: 0.01}, threads: 1}\n"
        "eval: {protocols: [ctr]}\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text("# Results\n\ndocumented table\n")
    return tmp_path


def test_reproduce_writes_nothing_without_the_option(project, monkeypatch, capsys):
    out = _reproduce(project, monkeypatch, capsys)
    assert "| mkr | tiny |" in out and machine_description() in out
    assert (project / "docs" / "results.md").read_text() == "# Results\n\ndocumented table\n"
    assert sorted(p.name for p in project.iterdir()) == ["configs", "docs", "runs", "tiny"]


def test_reproduce_writes_the_file_it_is_given(project, monkeypatch, capsys):
    out = _reproduce(project, monkeypatch, capsys, "--write-results", "docs/results.md")
    text = (project / "docs" / "results.md").read_text()
    assert text.startswith("# Results\n\ndocumented table\n")  # other blocks kept
    assert "<!-- reproduce:mkr -->" in text and "| mkr | tiny |" in text
    assert out.strip() in text
