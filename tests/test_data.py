"""Readers, preprocessing (MKR Table 1 counts) and the library error on bad input."""

import numpy as np
import pytest

from kgrec.data import KGDataset, load_dataset
from kgrec.data.readers.common import read_int_table
from kgrec.data.readers.mkr import load_processed, load_raw, preprocess_mkr, read_item_index, read_ratings
from kgrec.data.splits import per_user_split, ratio_split, split_triples, subsample_train
from kgrec.errors import DataError


def test_lastfm_raw_counts_equal_mkr_table1(real_data):
    ds = load_dataset("lastfm", "raw", real_data, use_cache=False)
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"], s["triples"]) == (1872, 3846, 42346, 15518)
    assert (s["entities"], s["relations"], s["positives"]) == (9366, 60, 21173)


def test_lastfm_raw_reproduces_published_processed_files(real_data):
    raw = load_dataset("lastfm", "raw", real_data, use_cache=False)
    ref = load_processed(real_data / "lastfm" / "processed", "lastfm")
    np.testing.assert_array_equal(raw.interactions, ref.interactions)
    np.testing.assert_array_equal(raw.triples, ref.triples)
    assert raw.relation_names[0] == "music.artist.origin"


def test_book_kg_conversion_matches_mkr_processed(real_data):
    items = read_item_index(real_data / "book" / "item_index2entity_id.txt")
    ratings = [(2, "1", items[0][0], 5.0)]
    ds = preprocess_mkr("book", ratings, items, real_data / "book" / "kg.txt", threshold=0)
    ref = read_int_table(real_data / "book" / "processed_mkr" / "kg_final.txt", 3)
    np.testing.assert_array_equal(ds.triples, ref)
    assert ds.stats()["triples"] == 19793


def test_processed_cache_roundtrip(real_data):
    first = load_dataset("lastfm", "raw", real_data)
    again = load_dataset("lastfm", "raw", real_data)
    np.testing.assert_array_equal(first.interactions, again.interactions)
    assert again.user_ids == first.user_ids and again.relation_names == first.relation_names


def _write_raw(folder, ratings_name, ratings_text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ratings_name).write_text(ratings_text)
    (folder / "item_index2entity_id.txt").write_text("".join(f"{10 + k}\t{100 + k}\r\n" for k in range(6)))
    (folder / "kg.txt").write_text("100\tgenre\t500\r\n101\tgenre\t500\r\n999\tgenre\t100\r\n")
    return folder


def test_movielens_reader_keeps_first_line_and_threshold(tmp_path):
    text = "1::10::5::0\n1::11::3::0\n2::12::4::0\n"
    folder = _write_raw(tmp_path / "ml", "ratings.dat", text)
    rows = read_ratings(folder / "ratings.dat", "movielens")
    assert [r[1:] for r in rows][0] == ("1", "10", 5.0)  # the original script dropped this line
    ds = load_raw(folder, "ml", "ratings.dat", "movielens", threshold=4)
    pos = ds.interactions[ds.interactions[:, 2] == 1]
    assert sorted(pos[:, 1].tolist()) == [0, 2]  # items 10 and 12; 11 (rating 3) is not positive
    neg = ds.interactions[(ds.interactions[:, 0] == 0) & (ds.interactions[:, 2] == 0), 1]
    assert 1 not in neg.tolist()  # a disliked item is not an "unwatched" negative
    assert ds.triples.tolist() == [[0, 0, 6], [1, 0, 6]]  # head 999 is not an item


def test_bookcrossing_csv_reader(tmp_path):
    text = '"User-ID";"ISBN";"Book-Rating"\n"7";"10";"0"\n"7";"11";"8"\n"8";"12";"5"\n'
    folder = _write_raw(tmp_path / "bx", "BX-Book-Ratings.csv", text)
    ds = load_raw(folder, "bx", "BX-Book-Ratings.csv", "bookcrossing", threshold=0)
    assert ds.n_users == 2 and ds.stats()["positives"] == 3


@pytest.mark.parametrize(
    "name, content, line, reason",
    [
        ("ratings_final.txt", "0\t1\t1\n0\t2\n", 2, "expected 3 fields"),
        ("ratings_final.txt", "0\t1\t1\n0\tx\t1\n", 2, "not an integer"),
        ("ratings_final.txt", "0\t1\t1\n0\t2\t7\n", 2, "label must be 0 or 1"),
        ("ratings_final.txt", "", None, "file is empty"),
        ("ratings_final.txt", "\n\n", None, "no data lines"),
        ("kg_final.txt", "0\t0\t1\n1\t0\n", 2, "expected 3 fields"),
        ("kg_final.txt", "0\t0\t-1\n", 1, "negative tail id"),
    ],
)
def test_processed_bad_input_names_file_and_line(tmp_path, name, content, line, reason):
    (tmp_path / "ratings_final.txt").write_text("0\t1\t1\n0\t2\t0\n")
    (tmp_path / "kg_final.txt").write_text("0\t0\t3\n")
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError) as err:
        load_processed(tmp_path, "bad")
    assert err.value.path.endswith(name) and err.value.line == line
    assert reason in str(err.value)
    assert name in str(err.value) and (line is None or f":{line}:" in str(err.value))


def test_missing_file(tmp_path):
    (tmp_path / "ratings_final.txt").write_text("0\t1\t1\n")
    with pytest.raises(DataError, match=r"kg_final.txt: file not found"):
        load_processed(tmp_path, "bad")


@pytest.mark.parametrize(
    "fmt, name, text, line, reason",
    [
        ("lastfm", "user_artists.dat", "userID\tartistID\tweight\n2\t10\t5\n2\t11\n", 3, "expected 3"),
        ("lastfm", "user_artists.dat", "userID\tartistID\tweight\n2\t10\tmany\n", 2, "not a number"),
        ("lastfm", "user_artists.dat", "userID\tartistID\tweight\nx\t10\t5\n", 2, "user id"),
        ("movielens", "ratings.dat", "1::10::5::0\n1::11\n", 2, "expected 3 or 4"),
        ("bookcrossing", "BX-Book-Ratings.csv", 'h;h;h\n"7";"10"\n', 2, "expected 3 fields"),
        ("bookcrossing", "BX-Book-Ratings.csv", 'h;h;h\n"7";"1"0";"5"\n', 2, "malformed CSV"),
    ],
)
def test_raw_bad_input_names_file_and_line(tmp_path, fmt, name, text, line, reason):
    folder = _write_raw(tmp_path / "raw", name, text)
    with pytest.raises(DataError) as err:
        load_raw(folder, "bad", name, fmt, threshold=0)
    assert err.value.line == line and reason in err.value.reason and name in str(err.value)


def test_item_index_errors(tmp_path):
    p = tmp_path / "item_index2entity_id.txt"
    p.write_text("10\t100\n11\t100\n")
    with pytest.raises(DataError, match=r":2: entity '100' aligned with two items"):
        read_item_index(p)
    p.write_text("10\t100\n10\t101\n")
    with pytest.raises(DataError, match=r":2: item '10' listed twice"):
        read_item_index(p)


def test_unknown_ids_rejected_by_dataset():
    with pytest.raises(DataError, match="item id 5 outside"):
        KGDataset("x", [[0, 5, 1]], [[0, 0, 1]], np.arange(3), n_users=1, n_items=3,
                  n_entities=4, n_relations=1)
    with pytest.raises(DataError, match="relation id 2 outside"):
        KGDataset("x", [[0, 1, 1]], [[0, 2, 1]], np.arange(3), n_users=1, n_items=3,
                  n_entities=4, n_relations=1)


def test_ratio_split_disjoint_seeded_622():
    rows = np.stack([np.arange(1000) % 50, np.arange(1000), np.arange(1000) % 2], 1)
    a, b = ratio_split(rows, seed=3), ratio_split(rows, seed=3)
    np.testing.assert_array_equal(a.train, b.train)
    assert (len(a.train), len(a.valid), len(a.test)) == (600, 200, 200)
    ids = np.concatenate([a.train[:, 1], a.valid[:, 1], a.test[:, 1]])
    assert len(np.unique(ids)) == 1000
    assert not np.array_equal(ratio_split(rows, seed=4).test, a.test)
    sub = subsample_train(a, 0.1, seed=3)
    assert len(sub.train) == 60 and np.isin(sub.train[:, 1], a.train[:, 1]).all()
    np.testing.assert_array_equal(sub.test, a.test)


def test_per_user_split_has_test_item_for_every_user():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 500)
    rows = np.stack([users, np.arange(500), np.ones(500, int)], 1)
    s = per_user_split(rows, (0.7, 0.1, 0.2), seed=0)
    assert set(s.test[:, 0]) == set(users)
    for u in range(0, 40, 7):
        n = (users == u).sum()
        n_train = (s.train[:, 0] == u).sum()
        assert abs(n_train - 0.7 * n) <= 1.5
    assert len(s.train) + len(s.valid) + len(s.test) == 500


def test_split_triples_keeps_eval_entities_in_train():
    rng = np.random.default_rng(0)
    tr = np.stack([rng.integers(0, 30, 400), rng.integers(0, 4, 400), rng.integers(0, 60, 400)], 1)
    parts = split_triples(tr, (0.8, 0.1, 0.1), seed=0)
    seen = set(parts["train"][:, 0]) | set(parts["train"][:, 2])
    for p in ("valid", "test"):
        assert set(parts[p][:, 0]) <= seen and set(parts[p][:, 2]) <= seen
    assert sum(len(p) for p in parts.values()) == 400


def test_min_user_positives_filters_before_split():
    from kgrec.data.splits import make_split

    inter = np.array([[0, 0, 1], [0, 1, 1], [0, 2, 1], [1, 0, 1], [1, 2, 0]])
    ds = KGDataset("x", inter, [[0, 0, 3]], np.arange(3), n_users=2, n_items=3, n_entities=4,
                   n_relations=1)
    s = make_split(ds, "per_user", (0.7, 0.1, 0.2), seed=0, negatives="drop", min_user_positives=2)
    users = np.concatenate([s.train, s.valid, s.test])[:, 0]
    assert set(users.tolist()) == {0} and len(users) == 3
