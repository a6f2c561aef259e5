"""Property-based fuzz of every reader (issue 11): a valid small dataset in each layout with
one of its files replaced by generated text or bytes (hostile ids, numbers, BOMs, NULs,
separators, Unicode digits, random bytes). Whatever the content, loading either succeeds
with a dataset whose ids are in range or raises the library's error type, never another
exception. Deterministic (``derandomize``) so CI runs are reproducible."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgrec.data.readers.kgat import load_kgat
from kgrec.data.readers.ktup import load_ktup
from kgrec.data.readers.mkr import load_processed, load_raw
from kgrec.errors import KGRecError
from tests.test_reader_kgat import write as write_kgat
from tests.test_reader_ktup import write_ktup

EXAMPLES = 400
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TOKENS = st.sampled_from([
    "0", "1", "2", "3", "4", "5", "12", "100", "101", "-1", "+1", "007", "1.5", "1e3", "4.0",
    "nan", "NaN", "inf", "-inf", "1_0", "²", "٣", "١٢", "x", "", " ", "\ufeff0", "\ufeff",
    "10000000000", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "99999999999999999999", "1" * 5000, "org_id", "remap_id", "\x00", '"', "'", ";", "::",
    "u10", "m.1", "B001", "http://dbpedia.org/resource/Alpha", "genre", "\r", "\u2028",
])
NASTY = st.sampled_from([
    "10000000000", "99999999999999999999", "9223372036854775808", "-1", "nan", "inf", "²",
    "\ufeff1", "1_0", "x", "", "1" * 5000])
FIELD = st.one_of(NASTY, NASTY, TOKENS, st.text(max_size=5))


def _split(line: str, sep: str | None) -> list[str]:
    return line.split(sep) if sep else line.split()


def fuzzed(draw, base: str, sep: str | None, width: int) -> bytes:
    """The valid file ``base`` mutated (hostile values in its fields, lines repeated,
    dropped or appended), rows of ``width`` fields made of hostile tokens, or free text and
    bytes; then optionally a BOM and another encoding."""
    kind = draw(st.integers(0, 9))
    sep_out = sep or " "
    if kind <= 5:  # mutate the valid file
        lines = base.splitlines()
        for _ in range(draw(st.integers(1, 3))):
            op = draw(st.integers(0, 5))
            k = draw(st.integers(0, max(len(lines) - 1, 0)))
            if op <= 2 and lines:
                fields = _split(lines[k], sep)
                j = draw(st.integers(0, max(len(fields) - 1, 0)))
                if fields:
                    fields[j] = draw(FIELD)
                lines[k] = sep_out.join(fields)
            elif op == 3 and lines:
                lines.insert(draw(st.integers(0, len(lines))), lines[k])  # a repeated line
            elif op == 4 and lines:
                del lines[k]
            else:
                lines.append(sep_out.join(draw(FIELD) for _ in range(width)))
        text = "\n".join(lines) + "\n"
    elif kind <= 7:  # well-formed rows of hostile tokens
        rows = draw(st.lists(st.lists(FIELD, min_size=width, max_size=width), max_size=6))
        text = "".join(sep_out.join(r) + "\n" for r in rows)
    elif kind == 8:
        rows = draw(st.lists(st.lists(FIELD, max_size=5), max_size=6))
        text = "".join(draw(st.sampled_from(["\t", " ", "::", ";"])).join(r) + "\r\n" for r in rows)
    else:
        return draw(st.binary(max_size=80))
    if draw(st.integers(0, 4)) == 0:
        text = "\ufeff" + text
    if draw(st.integers(0, 4)) == 0:
        text = text.replace("\n", "\r\n")
    enc = draw(st.sampled_from(["utf-8"] * 8 + ["latin-1", "utf-16"]))
    return text.encode(enc, errors="replace")


def _replace(root: Path, which: str, draw, sep: str | None, width: int) -> None:
    path = root / which
    path.write_bytes(fuzzed(draw, path.read_text(encoding="latin-1"), sep, width))


def _check(load) -> None:
    try:
        ds = load()
    except KGRecError:
        return
    ds.validate()  # what is accepted is consistent
    assert ds.n_users < 10**7 and ds.n_entities < 10**7  # no table sized by a corrupt id


def _processed(root: Path) -> Path:
    (root / "ratings_final.txt").write_text("0\t0\t1\n0\t1\t0\n1\t1\t1\n1\t0\t0\n")
    (root / "kg_final.txt").write_text("0\t0\t2\n1\t0\t3\n2\t1\t3\n")
    return root


RAW = {
    "lastfm": ("user_artists.dat", "userID\tartistID\tweight\n1\t10\t5\n1\t11\t3\n2\t12\t1\n"),
    "movielens": ("ratings.dat", "1::10::5::0\n1::11::3::0\n2::12::4::0\n"),
    "bookcrossing": ("BX-Book-Ratings.csv", '"User-ID";"ISBN";"Book-Rating"\n"7";"10";"0"\n'
                                            '"7";"11";"8"\n"8";"12";"5"\n'),
}


def _raw(root: Path, fmt: str) -> Path:
    name, text = RAW[fmt]
    (root / name).write_text(text)
    (root / "item_index2entity_id.txt").write_text("".join(f"{10 + k}\t{100 + k}\n" for k in range(4)))
    (root / "kg.txt").write_text("100\tgenre\t500\n101\tgenre\t500\n102\tby\t501\n")
    return root


@FUZZ
@given(which=st.sampled_from(["ratings_final.txt", "kg_final.txt"]), data=st.data())
def test_fuzz_processed(which, data):
    with tempfile.TemporaryDirectory() as d:
        root = _processed(Path(d))
        _replace(root, which, data.draw, "\t", 3)
        _check(lambda: load_processed(root, "p"))


RAW_SEP = {"lastfm": ("\t", 3), "movielens": ("::", 4), "bookcrossing": (";", 3)}


@pytest.mark.parametrize("fmt", sorted(RAW))
def test_fuzz_raw(fmt):
    @FUZZ
    @given(which=st.sampled_from([RAW[fmt][0], "item_index2entity_id.txt", "kg.txt"]),
           data=st.data())
    def fuzz(which, data):
        with tempfile.TemporaryDirectory() as d:
            root = _raw(Path(d), fmt)
            sep, width = RAW_SEP[fmt] if which == RAW[fmt][0] else \
                ("\t", 2 if which.startswith("item") else 3)
            _replace(root, which, data.draw, sep, width)
            _check(lambda: load_raw(root, "r", RAW[fmt][0], fmt, threshold=4 if fmt == "movielens"
                                    else 0))

    fuzz()


KTUP_FILES = {"u_map.dat": 2, "i_map.dat": 2, "i2kg_map.tsv": 3, "train.dat": 3, "valid.dat": 3,
              "test.dat": 3, "kg/e_map.dat": 2, "kg/r_map.dat": 2, "kg/train.dat": 3,
              "kg/valid.dat": 3, "kg/test.dat": 3}


@FUZZ
@given(which=st.sampled_from(sorted(KTUP_FILES)), data=st.data())
def test_fuzz_ktup(which, data):
    with tempfile.TemporaryDirectory() as d:
        root = write_ktup(Path(d))
        _replace(root, which, data.draw, "\t", KTUP_FILES[which])
        _check(lambda: load_ktup(root))


KGAT_FILES = {"train.txt": 3, "test.txt": 2, "kg_final.txt": 3, "item_list.txt": 3,
              "entity_list.txt": 2, "relation_list.txt": 2, "user_list.txt": 2}


@FUZZ
@given(which=st.sampled_from(sorted(KGAT_FILES)), data=st.data())
def test_fuzz_kgat(which, data):
    with tempfile.TemporaryDirectory() as d:
        root = write_kgat(Path(d))
        _replace(root, which, data.draw, None, KGAT_FILES[which])
        _check(lambda: load_kgat(root, "g"))
