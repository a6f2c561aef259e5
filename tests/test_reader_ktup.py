"""The KTUP-layout reader on small files written in that layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.data.readers.ktup import load_ktup
from kgrec.errors import DataError

URI = "http://dbpedia.org/resource/"


def write_ktup(root: Path, **override: str) -> Path:
    """A tiny KTUP dataset: 3 users, 4 items (3 linked), 5 entities, 2 relations."""
    files = {
        "u_map.dat": "0\tu10\n1\tu11\n2\tu12\n",
        "i_map.dat": "0\t100\n1\t101\n2\t102\n3\t103\n",
        # CRLF, an item (999) absent from i_map, an item (103) whose uri is not in e_map,
        # item 102 has no line at all, and a title with a comma
        "i2kg_map.tsv": (f"100\tAlpha, The\t{URI}Alpha\r\n"
                         f"999\tUnused\t{URI}Unused\r\n"
                         f"101\tBeta\t{URI}Beta\r\n"
                         f"103\tDelta\t{URI}Nowhere\r\n"),
        "train.dat": "0\t0\t5\n0\t1\t4\n1\t2\t3\n2\t3\t1\n0\t0\t5\n",  # one duplicate row
        "valid.dat": "1\t0\t4\n0\t1\t2\n",  # (0, 1) already in train
        "test.dat": "2\t1\t5\n",
        "kg/e_map.dat": (f"0\t{URI}Gamma\n1\t{URI}Alpha\n2\t{URI}Beta\n"
                         f"3\t{URI}Genre\n4\t{URI}Person\n"),
        "kg/r_map.dat": f"0\t{URI}genre\n1\t{URI}starring\n",
        # head, TAIL, relation
        "kg/train.dat": "1\t3\t0\n2\t3\t0\n1\t4\t1\n1\t3\t0\n",  # one duplicate
        "kg/valid.dat": "2\t4\t1\n1\t4\t1\n",  # second already in train
        "kg/test.dat": "0\t3\t0\n",
    }
    files.update(override)
    for rel, text in files.items():
        if text is None:
            continue
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("utf-8"))
    return root


def test_reads_layout(tmp_path):
    ds = load_ktup(write_ktup(tmp_path), "toy")
    assert (ds.n_users, ds.n_items, ds.n_entities, ds.n_relations) == (3, 4, 5, 2)
    assert ds.user_ids == ["u10", "u11", "u12"]
    assert ds.item_ids == ["100", "101", "102", "103"]
    assert ds.entity_ids[1] == URI + "Alpha"
    assert ds.relation_names == [URI + "genre", URI + "starring"]
    # original id -> uri -> entity id; 102 has no line, 103's uri is not an entity
    assert ds.item_entity.tolist() == [1, 2, -1, -1]
    assert ds.meta["i2kg_items_not_in_i_map"] == 1
    assert ds.meta["i2kg_uris_not_in_e_map"] == 1


def test_given_splits_labels_and_duplicates(tmp_path):
    ds = load_ktup(write_ktup(tmp_path))
    s = ds.given_split
    assert s.train.tolist() == [[0, 0, 1], [0, 1, 1], [1, 2, 1], [2, 3, 1]]
    assert s.valid.tolist() == [[1, 0, 1]]  # (0, 1) dropped: already in train
    assert s.test.tolist() == [[2, 1, 1]]
    assert ds.meta["duplicates_removed"]["ratings"] == {"train": 1, "valid": 1, "test": 0}
    assert len(ds.interactions) == 6


def test_triples_tail_before_relation(tmp_path):
    ds = load_ktup(write_ktup(tmp_path))
    kg = ds.kg_split
    # file rows are head, tail, relation; stored as head, relation, tail
    assert kg["train"].tolist() == [[1, 0, 3], [2, 0, 3], [1, 1, 4]]
    assert kg["valid"].tolist() == [[2, 1, 4]]
    assert kg["test"].tolist() == [[0, 0, 3]]
    assert ds.meta["duplicates_removed"]["triples"] == {"train": 1, "valid": 1, "test": 0}
    assert ds.triples.tolist() == kg["train"].tolist() + kg["valid"].tolist() + kg["test"].tolist()


def test_split_used_as_given(tmp_path):
    from kgrec.data.splits import make_split

    ds = load_ktup(write_ktup(tmp_path))
    split = make_split(ds, "given", (0.7, 0.1, 0.2), seed=3)
    assert np.array_equal(split.train, ds.given_split.train)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_ktup(tmp_path / "nope")


@pytest.mark.parametrize("rel", ["train.dat", "i_map.dat", "i2kg_map.tsv", "kg/test.dat",
                                 "kg/r_map.dat"])
def test_missing_file(tmp_path, rel):
    write_ktup(tmp_path, **{rel: None})
    with pytest.raises(DataError) as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith(rel) and "not found" in e.value.reason


@pytest.mark.parametrize("rel", ["valid.dat", "u_map.dat", "i2kg_map.tsv", "kg/e_map.dat",
                                 "kg/valid.dat"])
def test_empty_file(tmp_path, rel):
    write_ktup(tmp_path, **{rel: ""})
    with pytest.raises(DataError) as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith(rel) and "empty" in e.value.reason


def test_blank_only_file(tmp_path):
    write_ktup(tmp_path, **{"test.dat": "\n\r\n"})
    with pytest.raises(DataError, match="no data lines") as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith("test.dat")


@pytest.mark.parametrize(
    ("rel", "text", "line", "reason"),
    [
        ("train.dat", "0\t0\t5\n0\t1\n", 2, "expected 3 fields"),
        ("train.dat", "0\t0\t5\n0\tx\t4\n", 2, "not an integer"),
        ("valid.dat", "0\t0\tfive\n", 1, "not a number"),
        ("test.dat", "0\t0\t1\n-1\t0\t1\n", 2, "negative"),
        ("u_map.dat", "0\tu10\n0\tu11\n", 2, "listed twice"),
        ("i_map.dat", "0\t100\n1\n", 2, "expected 2 fields"),
        ("i2kg_map.tsv", f"100\tAlpha\t{URI}Alpha\r\n101\t{URI}Beta\r\n", 2, "expected 3"),
        ("kg/train.dat", "1\t3\t0\n1\t3\n", 2, "expected 3 fields"),
        ("kg/e_map.dat", "0\tx\nzero\ty\n", 2, "not an integer"),
    ],
)
def test_malformed_line(tmp_path, rel, text, line, reason):
    write_ktup(tmp_path, **{rel: text})
    with pytest.raises(DataError, match=reason) as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith(rel)
    assert e.value.line == line


@pytest.mark.parametrize(
    ("rel", "text", "line", "reason"),
    [
        ("train.dat", "0\t0\t5\n3\t1\t4\n", 2, "unknown user id 3"),
        ("valid.dat", "1\t0\t4\n1\t4\t4\n", 2, "unknown item id 4"),
        ("kg/test.dat", "0\t3\t0\n0\t7\t0\n", 2, "unknown entity id 7"),
        ("kg/valid.dat", "9\t4\t1\n", 1, "unknown entity id 9"),
        ("kg/train.dat", "1\t3\t0\n1\t3\t2\n", 2, "unknown relation id 2"),
    ],
)
def test_unknown_id(tmp_path, rel, text, line, reason):
    write_ktup(tmp_path, **{rel: text})
    with pytest.raises(DataError, match=reason) as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith(rel)
    assert e.value.line == line


def test_gap_in_mapped_ids_is_unknown(tmp_path):
    # user 1 has no line in u_map: ratings of user 1 are an unknown id
    write_ktup(tmp_path, **{"u_map.dat": "0\tu10\n2\tu12\n"})
    with pytest.raises(DataError, match="unknown user id 1") as e:
        load_ktup(tmp_path)
    assert e.value.path.endswith("train.dat") and e.value.line == 3
