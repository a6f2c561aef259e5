"""``kgrec models`` and ``kgrec datasets list`` through ``kgrec.cli.main()``."""

from __future__ import annotations

import pytest

from kgrec import cli
from kgrec.models import MODELS


def run_main(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_every_model_has_a_paper_and_tasks():
    for name, cls in MODELS.items():
        assert cls.paper, f"register_model({name!r}, paper=...) is missing the citation"
        assert cls.tasks


def test_models_lists_paper_and_tasks(capsys):
    out = run_main(["models"], capsys)
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert set(rows) == set(MODELS)
    assert "Wang et al., WWW 2019 (MKR)" in rows["mkr"] and rows["mkr"].endswith("tasks: rec, kge")
    assert "Cao et al., WWW 2019 (KTUP)" in rows["ktup"] and rows["ktup"].endswith("tasks: rec, kg")
    assert "Chen et al., SIGIR 2020 (JNSKR)" in rows["jnskr"]


def test_datasets_list_shows_source_and_presence(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "lastfm").mkdir(parents=True)
    for f in ("user_artists.dat", "kg.txt", "item_index2entity_id.txt"):
        (data / "lastfm" / f).write_text("x\n")
    (data / "movie").mkdir()
    (data / "movie" / "kg.txt").write_text("x\n")
    (data / "mine").mkdir()
    (data / "mine" / "ratings_final.txt").write_text("0\t0\t1\n")
    out = run_main(["datasets", "list", "--data-dir", str(data)], capsys)
    blocks = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            key = line.split()[0]
        blocks[key] = blocks.get(key, "") + line + "\n"
    assert "source: github.com/hwwang55/MKR@d6bb77c" in blocks["lastfm"]
    assert f"present ({data / 'lastfm'})" in blocks["lastfm"]
    assert "not present: kgrec datasets download book" in blocks["book"]
    assert "files.grouplens.org/datasets/movielens/ml-1m.zip" in blocks["movie"]
    assert "missing item_index2entity_id.txt, ratings.dat): kgrec datasets download movie" \
        in blocks["movie"]
    assert f"a folder of the data folder ({data / 'mine'}), processed layout" in blocks["mine"]
    empty = run_main(["datasets", "list", "--data-dir", str(tmp_path / "empty")], capsys)
    assert "shipped with kgrec (processed files in" in empty.split("\nbook ")[0]
    assert "not present: kgrec datasets download book" in empty
