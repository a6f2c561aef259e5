"""KGAT-layout reader on small files the tests write, each bad-input case included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.data.readers.kgat import carve_validation, load_kgat
from kgrec.errors import DataError

TRAIN = "0 0 1 2 3 4 5 6 7 8 9\n1 2 3\n2\n3 4 4 5\n"  # user 2: no items; user 3: duplicate 4
TEST = "0 10\n1 4\n3 6 7\n"
KG = "0 0 12\n1 1 12\n12 2 13\n10 0 11\n"
ITEMS = "org_id remap_id freebase_id\n" + "".join(f"B{k:03d} {k} m.{k}\n" for k in range(11))
ENTITIES = "org_id remap_id\n" + "".join(f"m.{k} {k}\n" for k in range(14))
RELATIONS = "org_id remap_id\nhttp://fb/ns/a 0\nhttp://fb/ns/b 1\nhttp://fb/ns/c 2\n"
USERS = "org_id remap_id\nA 0\nB 1\nC 2\nD 3\nE 4\n"


def write(folder: Path, lists: bool = True, **override: str) -> Path:
    files = {"train.txt": TRAIN, "test.txt": TEST, "kg_final.txt": KG}
    if lists:
        files.update({"item_list.txt": ITEMS, "entity_list.txt": ENTITIES,
                      "relation_list.txt": RELATIONS, "user_list.txt": USERS})
    files.update({k.replace("__", "."): v for k, v in override.items()})
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        if text is not None:
            (folder / fname).write_text(text)
    return folder


def pairs(rows: np.ndarray) -> set[tuple[int, int]]:
    return {(int(u), int(i)) for u, i in rows[:, :2]}


def test_reads_layout_with_lists(tmp_path):
    ds = load_kgat(write(tmp_path / "d"), "toy")
    assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (5, 11, 14, 3)
    assert np.array_equal(ds.item_entity, np.arange(11))
    assert ds.user_ids == ["A", "B", "C", "D", "E"]
    assert ds.item_ids[3] == "B003" and ds.entity_ids[13] == "m.13"
    assert ds.relation_names == ["http://fb/ns/a", "http://fb/ns/b", "http://fb/ns/c"]
    assert ds.triples.tolist() == [[0, 0, 12], [1, 1, 12], [12, 2, 13], [10, 0, 11]]
    sp = ds.given_split
    train_all = {(0, i) for i in range(10)} | {(1, 2), (1, 3), (3, 4), (3, 5)}
    assert pairs(sp.train) | pairs(sp.valid) == train_all
    assert not pairs(sp.train) & pairs(sp.valid)
    assert pairs(sp.test) == {(0, 10), (1, 4), (3, 6), (3, 7)}
    # user 0 has 10 training items -> 1 to validation; users 1 and 3 have 2 -> round(0.2)=0
    assert pairs(sp.valid) and {u for u, _ in pairs(sp.valid)} == {0}
    assert (sp.train[:, 2] == 1).all() and (sp.test[:, 2] == 1).all()
    assert len(ds.interactions) == len(sp.train) + len(sp.valid) + len(sp.test)
    assert ds.meta["duplicates_removed"] == {"train": 1, "test": 0, "test_in_train": 0}


def test_counts_without_lists_and_the_split_is_seeded(tmp_path):
    folder = write(tmp_path / "d", lists=False)
    ds = load_kgat(folder, "toy")
    assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (4, 11, 14, 3)
    assert ds.user_ids is None and ds.entity_ids is None
    again = load_kgat(folder, "toy")
    assert np.array_equal(ds.given_split.valid, again.given_split.valid)
    others = {tuple(map(tuple, load_kgat(folder, "toy", seed=s).given_split.valid))
              for s in range(10)}
    assert len(others) > 1
    none = load_kgat(folder, "toy", valid_ratio=0.0)
    assert len(none.given_split.valid) == 0 and len(none.given_split.train) == 14


def test_carve_validation_keeps_one_item_per_user():
    train = np.array([[0, i] for i in range(4)] + [[1, 9]] + [[2, 5], [2, 6]])
    tr, va = carve_validation(train, 0.5, seed=0)
    assert len(va) == 2 + 0 + 1  # 4*0.5 = 2, single item stays, 2*0.5 = 1
    assert {int(u) for u in tr[:, 0]} == {0, 1, 2}
    assert sorted(map(tuple, np.r_[tr, va].tolist())) == sorted(map(tuple, train.tolist()))


def test_crlf_and_extra_spaces_are_accepted(tmp_path):
    folder = write(tmp_path / "d", train__txt=TRAIN.replace("\n", " \r\n"),
                   kg_final__txt=KG.replace(" ", "  "))
    ds = load_kgat(folder, "toy")
    assert ds.n_items == 11 and len(ds.triples) == 4


@pytest.mark.parametrize("fname, text, line, reason", [
    ("train.txt", "0 1\n1 x 2\n", 2, "not an integer"),
    ("train.txt", "0 1\n-1 2\n", 2, "negative user id"),
    ("train.txt", "0 1\n1 2\n0 3\n", 3, "already listed on line 1"),
    ("test.txt", "0 1\n1 -3\n", 2, "negative item id"),
    ("kg_final.txt", "0 0 12\n1 1\n", 2, "expected 3 fields"),
    ("kg_final.txt", "0 0 12\n1 r 3\n", 2, "relation id is not an integer"),
    ("kg_final.txt", "0 0 12\n0 0 99\n", 2, "not in entity_list.txt"),
    ("kg_final.txt", "0 0 12\n0 7 3\n", 2, "relation id 7 is not in relation_list.txt"),
    ("test.txt", "0 10\n1 11\n", 2, "item id 11 is not in item_list.txt"),
    ("test.txt", "0 10\n7 1\n", 2, "user id 7 is not in user_list.txt"),
    ("entity_list.txt", "org_id remap_id\nm.0 0\nm.1 0\n", 3, "remap id 0 listed twice"),
    ("user_list.txt", "org_id remap_id\nA zero\n", 2, "remap id is not an integer"),
    ("item_list.txt", "org_id remap_id freebase_id\nB 0 m.0 extra\n", 2, "expected 2 or 3"),
])
def test_bad_lines_name_file_and_line(tmp_path, fname, text, line, reason):
    folder = write(tmp_path / "d", **{fname.replace(".", "__"): text})
    with pytest.raises(DataError) as e:
        load_kgat(folder, "toy")
    assert Path(e.value.path).name == fname
    assert e.value.line == line
    assert reason in e.value.reason


@pytest.mark.parametrize("fname", ["train.txt", "test.txt", "kg_final.txt"])
def test_missing_or_empty_files(tmp_path, fname):
    folder = write(tmp_path / "a")
    (folder / fname).unlink()
    with pytest.raises(DataError, match="file not found"):
        load_kgat(folder, "toy")
    folder = write(tmp_path / "b", **{fname.replace(".", "__"): ""})
    with pytest.raises(DataError, match="empty"):
        load_kgat(folder, "toy")


def test_entity_list_shorter_than_items(tmp_path):
    folder = write(tmp_path / "d", entity_list__txt="org_id remap_id\nm.0 0\nm.1 1\n",
                   kg_final__txt="0 0 1\n")
    with pytest.raises(DataError, match="items are entities"):
        load_kgat(folder, "toy")


def test_registry_reads_kgat_folder(tmp_path):
    from kgrec.data import load_dataset, make_split

    folder = write(tmp_path / "amazon-toy")
    ds = load_dataset(str(folder))  # layout auto-detected from train.txt
    assert ds.name == "amazon-toy" and ds.given_split is not None
    split = make_split(ds, "given", (0.7, 0.1, 0.2), seed=0)
    assert pairs(split.test) == {(0, 10), (1, 4), (3, 6), (3, 7)}


def test_run_seed_reseeds_validation_not_test(tmp_path):
    from kgrec.config import load_config
    from kgrec.training.experiment import prepare_data

    folder = write(tmp_path / "d", lists=False)
    raw = {"model": "bprmf", "data": {"dataset": str(folder), "layout": "kgat", "split": "given"}}
    splits = [prepare_data(load_config(raw={**raw, "seed": s}))[1] for s in range(6)]
    assert len({tuple(map(tuple, sp.valid)) for sp in splits}) > 1  # the seed moves validation
    for sp in splits:
        assert pairs(sp.train) | pairs(sp.valid) == pairs(splits[0].train) | pairs(splits[0].valid)
        assert not pairs(sp.train) & pairs(sp.valid)
        assert np.array_equal(sp.test, splits[0].test)
    # the carving depends on the pairs and the seed only
    ds = load_kgat(folder, "toy", seed=3)
    assert np.array_equal(prepare_data(load_config(raw={**raw, "seed": 3}))[1].valid,
                          ds.given_split.valid)
