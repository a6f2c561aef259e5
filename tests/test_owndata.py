"""Your own data: the csv and RecBole atomic readers, export/import round trips, the
dataset check, and recommendations/explanations with the data's own ids and names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kgrec.cli import main
from kgrec.config import load_config
from kgrec.data import load_dataset
from kgrec.data.check import check_dataset
from kgrec.data.export import export_dataset
from kgrec.data.readers.custom import load_custom
from kgrec.data.readers.recbole import load_atomic
from kgrec.errors import ConfigError, DataError, KGRecError
from kgrec.recommend import Recommender, short_name
from kgrec.training.experiment import run

GENRES = ["alternative rock", "electronic", "jazz", "hip hop"]


def write_music(folder: Path, n_users: int = 24, n_items: int = 16, seed: int = 0,
                sep: str = ",", header: bool = True, rating: bool = False) -> Path:
    """A small music dataset with string ids: users like the artists of their own genre;
    each artist has a genre and a country; genres have a parent."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    artists = [f"Artist {chr(65 + k)}" for k in range(n_items)]
    genre = {a: GENRES[k % len(GENRES)] for k, a in enumerate(artists)}
    inter = []
    for u in range(n_users):
        g = GENRES[u % len(GENRES)]
        mine = [a for a in artists if genre[a] == g]
        for a in rng.choice(mine, size=3, replace=False):
            inter.append((f"user_{u:02d}", a, 5 if rating else 1))
        if rating:
            other = [a for a in artists if genre[a] != g]
            inter.append((f"user_{u:02d}", rng.choice(other), 1))
    triples = [(a, "genre", genre[a]) for a in artists]
    triples += [(a, "country", ["UK", "Iceland", "US"][k % 3]) for k, a in enumerate(artists)]
    triples += [(g, "subgenre of", "music") for g in GENRES]
    links = [(a, a) for a in artists]

    def text(head, rows):
        lines = [sep.join(head)] if header else []
        lines += [sep.join(str(x) for x in r) for r in rows]
        return "\n".join(lines) + "\n"

    ext = "csv" if sep != "\t" else "tsv"
    third = ["rating"] if rating else []
    rows = inter if rating else [r[:2] for r in inter]
    (folder / f"interactions.{ext}").write_text(text(["user", "item", *third], rows))
    (folder / f"triples.{ext}").write_text(text(["head", "relation", "tail"], triples))
    (folder / f"links.{ext}").write_text(text(["item", "entity"], links))
    return folder


@pytest.fixture
def music(tmp_path) -> Path:
    return write_music(tmp_path / "music")


def named_sets(ds):
    """The dataset as strings: positives, negatives, triples and links by original ids."""
    u, i, e, r = ds.user_ids, ds.item_ids, ds.entity_ids, ds.relation_names
    pos = {(u[a], i[b]) for a, b, y in ds.interactions.tolist() if y == 1}
    neg = {(u[a], i[b]) for a, b, y in ds.interactions.tolist() if y == 0}
    triples = {(e[h], r[k], e[t]) for h, k, t in ds.triples.tolist()}
    links = {(i[k], e[x]) for k, x in enumerate(ds.item_entity.tolist()) if x >= 0}
    return pos, neg, triples, links


# ---- the csv reader ----------------------------------------------------------------------
def test_csv_reader_keeps_string_ids_and_samples_negatives(music):
    ds = load_dataset(str(music))  # layout auto -> csv
    assert ds.meta["layout"] == "csv" and ds.meta["labels"] == "implicit"
    assert (ds.n_users, ds.n_items, ds.n_relations) == (24, 16, 3)
    assert ds.user_ids[0] == "user_00" and ds.item_ids[0] in {f"Artist {chr(65 + k)}" for k in range(16)}
    assert "alternative rock" in ds.entity_ids and ds.relation_names == ["genre", "country", "subgenre of"]
    pos, neg, triples, links = named_sets(ds)
    assert len(pos) == 72 and len(neg) == 72  # one sampled negative per positive
    assert not pos & neg
    assert ("Artist A", "genre", "alternative rock") in triples
    assert all(it == ent for it, ent in links) and len(links) == 16
    # the same on every load (fixed seed)
    assert np.array_equal(load_dataset(str(music)).interactions, ds.interactions)


def test_tsv_headerless_ratings_and_threshold(tmp_path):
    folder = write_music(tmp_path / "m", sep="\t", header=False, rating=True)
    every = load_custom(folder)  # no threshold: every rated row is a positive
    assert every.meta["labels"] == "rating"
    assert every.stats()["positives"] == 24 * 4
    cut = load_dataset(str(folder), rating_threshold=4)
    assert cut.stats()["positives"] == 24 * 3 and cut.meta["dropped_below_threshold"] == 24
    pos, neg, *_ = named_sets(cut)
    low = {(u, i) for u, i in named_sets(every)[0]} - pos
    assert len(low) == 24 and not low & neg  # a low rating is never a sampled negative
    # the config key reaches the reader, and changes what is trained on
    cfg = load_config(raw={"model": "bprmf", "data": {"dataset": str(folder), "rating_threshold": 4}})
    assert cfg.data.rating_threshold == 4
    with pytest.raises(ConfigError):
        load_dataset(str(folder), layout="kgat", rating_threshold=4)


def test_labels_duplicates_and_quoted_names(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "interactions.csv").write_text(
        "\ufeffuser_id,item_id,label\nu1,\"Crosby, Stills & Nash\",1\nu1,b,0\nu2,b,1\nu2,b,0\n"
        "u1,\"Crosby, Stills & Nash\",1\n")
    (d / "triples.csv").write_text("\"Crosby, Stills & Nash\",genre,folk\nb,genre,folk\nb,genre,folk\n")
    ds = load_custom(d)
    assert ds.item_ids == ["Crosby, Stills & Nash", "b"] and ds.user_ids == ["u1", "u2"]
    pos, neg, triples, links = named_sets(ds)
    assert pos == {("u1", "Crosby, Stills & Nash"), ("u2", "b")}  # positive wins the conflict
    assert neg == {("u1", "b")}  # observed negatives: none sampled
    assert ds.meta["sampled_negatives"] == 0
    assert ds.meta["duplicates_removed"] == {"interactions": 2, "triples": 1, "links": 0}
    assert links == {("Crosby, Stills & Nash", "Crosby, Stills & Nash"), ("b", "b")}  # by name


@pytest.mark.parametrize("files,line,reason", [
    ({"interactions.csv": "u,i\nu2\n"}, 2, "expected 2 or 3"),
    ({"interactions.csv": "user,item,label\nu,i,1\nu2,i,2\n"}, 3, "label must be 0 or 1"),
    ({"interactions.csv": "user,item,label\nu,i,x\n"}, 2, "not a number"),
    ({"interactions.csv": "u,i,nan\n"}, 1, "not finite"),
    ({"interactions.csv": "u,,1\n"}, 1, "empty item id"),
    ({"interactions.csv": "u,i,1\nu,i\n"}, 2, "2 fields where line 1 has 3"),
    ({"triples.csv": "a,b\n"}, 1, "expected 3"),
    ({"links.csv": "i,a\ni,b\n"}, 2, "linked to several entities"),
    ({"interactions.csv": b"u,\xff\n"}, 1, "not UTF-8"),
    ({"interactions.csv": "u,\"i\n"}, None, "malformed"),
])
def test_csv_reader_errors_name_file_and_line(tmp_path, files, line, reason):
    d = tmp_path / "d"
    d.mkdir()
    base = {"interactions.csv": "u,i\n", "triples.csv": "i,r,a\n"}
    for name, text in {**base, **files}.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError) as e:
        load_custom(d)
    assert reason in e.value.reason
    if line is not None:
        assert e.value.line == line
    assert Path(e.value.path).parent == d


def test_missing_or_ambiguous_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "interactions.csv").write_text("u,i\n")
    with pytest.raises(DataError, match="triples.csv"):
        load_custom(d)
    (d / "triples.csv").write_text("i,r,a\n")
    (d / "triples.tsv").write_text("i\tr\ta\n")
    with pytest.raises(DataError, match="several triples"):
        load_custom(d)


# ---- RecBole atomic ------------------------------------------------------------------------
def write_atomic(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{folder.name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\tm1\t5\t100\n1\tm2\t2\t101\n2\tm2\t4\t102\n2\tm3\t5\t103\n3\tm1\t4\t104\n")
    (folder / f"{folder.name}.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        "e1\tfilm.director\tSpielberg\ne2\tfilm.director\tSpielberg\ne3\tfilm.genre\tDrama\n")
    (folder / f"{folder.name}.link").write_text("item_id:token\tentity_id:token\nm1\te1\nm2\te2\nm3\te3\n")
    return folder


def test_atomic_reader(tmp_path):
    ds = load_dataset(str(write_atomic(tmp_path / "ml")), rating_threshold=4)
    assert ds.meta["layout"] == "atomic"
    pos, neg, triples, links = named_sets(ds)
    assert pos == {("1", "m1"), ("2", "m2"), ("2", "m3"), ("3", "m1")}
    assert ("1", "m2") not in neg  # rated 2: dropped, not a negative
    assert links == {("m1", "e1"), ("m2", "e2"), ("m3", "e3")}
    assert ("e1", "film.director", "Spielberg") in triples


def test_atomic_reader_errors(tmp_path):
    d = write_atomic(tmp_path / "ml")
    (d / "ml.kg").write_text("head_id:token\ttail_id:token\n1\t2\n")
    with pytest.raises(DataError, match="no relation_id field"):
        load_atomic(d)
    write_atomic(d)
    (d / "ml.inter").write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(DataError, match="field:type"):
        load_atomic(d)


# ---- export and re-import ------------------------------------------------------------------
@pytest.mark.parametrize("fmt,layout", [("csv", "csv"), ("atomic", "atomic"), ("kgat", "kgat")])
def test_export_reimport_is_the_same_dataset(music, tmp_path, fmt, layout):
    ds = load_dataset(str(music))
    out = tmp_path / f"out-{fmt}"
    files = export_dataset(ds, fmt, out)
    assert all(p.is_file() for p in files)
    back = load_dataset(str(out))  # layout detected from the files
    assert back.meta["layout"] == layout
    pos, neg, triples, links = named_sets(ds)
    blank = (lambda s: s.replace(" ", "_")) if fmt == "kgat" else (lambda s: s)
    b_pos, b_neg, b_triples, b_links = named_sets(back)
    assert b_pos == {(blank(u), blank(i)) for u, i in pos}
    assert b_triples == {tuple(map(blank, t)) for t in triples}
    assert b_links == {(blank(i), blank(e)) for i, e in links}
    assert (back.n_users, back.n_items, back.n_relations, len(back.triples)) == \
        (ds.n_users, ds.n_items, ds.n_relations, len(ds.triples))
    if fmt != "kgat":  # kgat keeps positives only
        assert b_neg == neg and np.array_equal(back.interactions, ds.interactions)
        assert back.n_entities == ds.n_entities
    with pytest.raises(ConfigError, match="exists"):
        export_dataset(ds, fmt, out)
    export_dataset(ds, fmt, out, overwrite=True)


def test_kgat_import_names_and_export_of_integer_data(tiny_processed, tmp_path):
    ds = load_dataset(str(tiny_processed), "processed")
    export_dataset(ds, "atomic", tmp_path / "a")
    back = load_dataset(str(tmp_path / "a"))
    assert back.user_ids[:1] == ["0"] and named_sets(back)[2] == {
        (str(h), str(r), str(t)) for h, r, t in ds.triples.tolist()}
    export_dataset(back, "kgat", tmp_path / "k")
    k = load_dataset(str(tmp_path / "k"))
    assert named_sets(k)[0] == named_sets(back)[0] and named_sets(k)[2] == named_sets(back)[2]


def test_cli_export_and_check(music, tmp_path, capsys):
    for fmt in ("csv", "atomic", "kgat"):
        with pytest.raises(SystemExit) as e:
            main_args("datasets", "export", str(music), "--to", fmt, "--out", str(tmp_path / fmt))
        assert e.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main_args("datasets", "export", str(music), "--to", "xml", "--out", str(tmp_path / "x"))
    assert e.value.code == 2 and "unknown export format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main_args("datasets", "check", str(tmp_path / "atomic"), "--json")
    assert e.value.code == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["layout"] == "atomic" and rep["counts"]["users"] == 24
    assert rep["findings"]["items_without_entity"]["count"] == 0


def main_args(*args: str) -> None:
    import sys

    old = sys.argv
    sys.argv = ["kgrec", *args]
    try:
        main()
    finally:
        sys.argv = old
    raise SystemExit(0)


# ---- datasets check -----------------------------------------------------------------------
def write_messy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text(
        "user,item,rating\n"
        "ann,a1,5\nann,a1,5\n"      # duplicate row
        "ann,a2,5\nann,a2,1\n"      # conflicting ratings
        "bob,a3,2\n"                # below a threshold of 4: lost, bob has no positive
        "cat,a4,4\ncat,a9,5\n")     # a9 has no entity
    (folder / "triples.csv").write_text(
        "head,relation,tail\n"
        "e1,genre,rock\ne1,genre,rock\n"        # duplicate triple
        "e2,genre,rock\ne3,genre,pop\ne4,genre,pop\n"
        "island1,near,island2\nisland2,near,island3\n")  # never reached from an item
    (folder / "links.csv").write_text(
        "item,entity\na1,e1\na2,e2\na3,e3\na4,e4\na4,e4\n"
        "a7,e1\n"          # dangling item (no interaction); e1 linked to two items
        "a8,e8\n"          # dangling item and an entity in no triple
        "a3,e5\n")         # a3 linked to two entities
    return folder


def test_check_counts_on_a_messy_dataset(tmp_path, capsys):
    d = write_messy(tmp_path / "messy")
    rep = check_dataset(str(d), rating_threshold=4, min_user_positives=2)
    f = {x.key: x for x in rep.findings}
    counts = {k: v.count for k, v in f.items()}
    assert counts["duplicate_interactions"] == 1
    assert counts["conflicting_labels"] == 1 and "ann, a2" in f["conflicting_labels"].examples[0]
    assert counts["below_threshold"] == 2  # bob's 2 and ann's 1
    assert counts["users_without_positive"] == 1 and f["users_without_positive"].examples == ["bob"]
    assert counts["lost_to_min_positives"] == 1  # bob's row (ann 2 positives, cat 2)
    assert counts["duplicate_triples"] == 1 and "triples.csv:3" in f["duplicate_triples"].examples[0]
    assert counts["items_without_entity"] == 1 and f["items_without_entity"].examples == ["a9"]
    assert counts["duplicate_links"] == 1
    assert counts["dangling_link_items"] == 2  # a7, a8
    assert counts["dangling_link_entities"] == 2  # e8 and e5
    assert counts["items_linked_twice"] == 1 and f["items_linked_twice"].examples == ["a3: e3, e5"]
    assert counts["entities_linked_twice"] == 1
    assert counts["unreached_entities"] == 3 and counts["unreached_triples"] == 2
    text = rep.text()
    assert "entities never reached from any item" in text and "e.g. island1" in text
    # the CLI: exit 0 with the report, exit 2 only on unreadable input
    with pytest.raises(SystemExit) as e:
        main_args("datasets", "check", str(d), "--rating-threshold", "4")
    assert e.value.code == 0 and "duplicate interaction rows" in capsys.readouterr().out
    (d / "triples.csv").write_text("a,b\n")
    with pytest.raises(SystemExit) as e:
        main_args("datasets", "check", str(d))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "triples.csv:1" in err and "Traceback" not in err


def test_check_on_a_loaded_layout(tiny_processed):
    rep = check_dataset(str(tiny_processed))
    assert rep.layout == "processed"
    f = {x.key: x.count for x in rep.findings}
    assert f["items_without_entity"] == 0 and f["duplicate_interactions"] == 0


# ---- train, recommend and explain with string ids -----------------------------------------
MODELS = {
    "mkr": {"dim": 4, "n_low_layers": 1},
    "ktup": {"dim": 8},
    "jnskr": {"dim": 8},
}


def _train(music, tmp_path, model):
    cfg = load_config(raw={
        "model": model, "model_args": MODELS[model],
        "data": {"dataset": str(music), "split": "ratio",
                 **({"negatives": "drop"} if model != "mkr" else {})},
        "train": {"epochs": 1, "batch_size": 64, "threads": 1,
                  "monitor": "valid.auc" if model == "mkr" else "valid.recall@5"},
        "eval": {"ks": [5], "protocols": ["ctr", "topk"] if model == "mkr" else ["topk"]},
    })
    run(cfg, tmp_path / model, progress=False)
    return Recommender.from_run(tmp_path / model)


@pytest.mark.parametrize("model", ["mkr", "ktup", "jnskr"])
def test_train_recommend_explain_with_names(music, tmp_path, model):
    rec = _train(music, tmp_path, model)
    recs = rec.recommend("user_03", k=4, explain=True)
    assert len(recs) == 4 and all(r["user"] == "user_03" for r in recs)
    assert all(r["item"].startswith("Artist ") and r["name"] == r["item"] for r in recs)
    if model == "mkr":  # no explanation of its own: said plainly, as `kgrec explain` does
        assert not rec.explains
        assert all(r["explanation"]["available"] is False and not r["explanation"]["lines"]
                   for r in recs)
        with pytest.raises(KGRecError, match="has no explanation"):
            rec.explain("user_03", recs[0]["item"])
        return
    lines = [ln for r in recs for ln in r["explanation"]["lines"]]
    assert all(any(r["item"] in ln for ln in r["explanation"]["lines"]) for r in recs), lines
    if model == "jnskr":  # attention over the item's own facts, by name; no heatmap to draw
        with pytest.raises(SystemExit) as e:
            main_args("explain", str(tmp_path / model), "--user", "user_03", "--item", recs[0]["item"],
                      "--plot", str(tmp_path / "h.png"))
        assert e.value.code == 2 and not (tmp_path / "h.png").exists()
        assert any(f"{r['item']} --genre--> " in ln for r in recs for ln in r["explanation"]["lines"])
        assert any(g in ln for ln in lines for g in GENRES + ["UK", "Iceland", "US"]), lines
    else:  # the induced preference is a relation, named
        assert all(any(rel in r["explanation"]["lines"][0] for rel in ("genre", "country", "subgenre of"))
                   for r in recs)
    assert not any("relation " in ln for ln in lines)
    one = rec.explain("user_03", recs[0]["item"])
    assert one["lines"] == recs[0]["explanation"]["lines"]


def test_unknown_user_ids_fail_cleanly(music, tmp_path, capsys):
    rec = _train(music, tmp_path, "mkr")
    with pytest.raises(KGRecError, match="unknown user '1'"):
        rec.recommend("1")  # an index, not one of the data's own ids
    with pytest.raises(KGRecError, match="unknown item '0'"):
        rec.score(["user_03"], ["0"])
    with pytest.raises(SystemExit) as e:
        main_args("recommend", str(tmp_path / "mkr"), "--user", "1")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown user '1'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main_args("recommend", str(tmp_path / "mkr"), "--user", "user_03", "-k", "2", "--explain")
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.count("has no explanation of its own") == 1


def test_hkrm_recommend_explain_through_the_cli(tiny_processed, tmp_path, capsys):
    cfg = tmp_path / "h.yaml"
    cfg.write_text(f"model: hkrm\nmodel_args: {{dim: 4}}\ndata: {{dataset: {tiny_processed}, "
                   "layout: processed}\ntrain: {epochs: 1, batch_size: 64, threads: 1}\n"
                   "eval: {ks: [1, 5]}\n")
    with pytest.raises(SystemExit) as e:
        main_args("train", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    assert e.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main_args("recommend", str(tmp_path / "run"), "--user", "3", "-k", "3", "--explain")
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    assert out.count("user prefers:") == 3 and out.count("click probability") == 3
    assert out.count("integer ids only") == 1  # said once, not per item
    with pytest.raises(SystemExit) as e:  # kgrec explain agrees: HKRM explains
        main_args("explain", str(tmp_path / "run"), "--user", "3", "--item", "4")
    assert e.value.code == 0 and "item_distribution" in capsys.readouterr().out


def test_short_names_of_uris():
    assert short_name("http://dbpedia.org/resource/The_Ghost_Map") == "The Ghost Map"
    assert short_name("<http://dbpedia.org/ontology/language>") == "language"
    assert short_name("http://x.org/ns#genre") == "genre"
    assert short_name("http://x.org/a%20b/") == "a b"
    assert short_name("alternative rock") == "alternative rock"


# ---- property tests: random input is read or refused with a KGRecError ----------------------
GOOD = ["a", "b", "c", "Björk", "x y", "1", "0"]
BAD = ["", " ", "\"q", "a\"b", "\ufeff", "user", "label", "nan", "2.5"]
TOKEN = st.sampled_from(GOOD * 6 + BAD)


@st.composite
def delimited(draw, width: int) -> bytes:
    """A file of rows of ``width`` tokens (sometimes one more or less), mostly well formed."""
    sep = draw(st.sampled_from([",", "\t", ";"]))
    n = draw(st.sampled_from([width] * 6 + [width - 1, width + 1]))
    rows = draw(st.lists(st.lists(TOKEN, min_size=n, max_size=n), min_size=1, max_size=5))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(sep.join(r) for r in rows).encode() + end.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inter=st.one_of(delimited(2), delimited(3)), triples=delimited(3),
       links=st.one_of(st.none(), delimited(2)), raw=st.binary(min_size=1, max_size=40),
       which=st.integers(0, 12))
def test_csv_reader_random_input(tmp_path_factory, inter, triples, links, raw, which):
    d = tmp_path_factory.mktemp("h")
    files = {"interactions.csv": inter, "triples.csv": triples}
    if links is not None:
        files["links.csv"] = links
    if which < len(files):  # one file replaced by random bytes
        files[list(files)[which]] = raw
    for name, data in files.items():
        (d / name).write_bytes(data)
    try:
        ds = load_custom(d)
    except KGRecError as e:
        event(f"refused: {getattr(e, 'reason', str(e))[:25]}")
        return
    event("read")
    assert ds.n_users >= 1 and (ds.interactions[:, 2] == 1).any()
    assert all(x for x in ds.user_ids + ds.item_ids + ds.entity_ids)  # no empty id


CELL = st.sampled_from(["1", "x", "", "0.5", "1e9", "nan", "a b", "\"q", "é"] + ["1", "0", "u", "i"] * 4)
ROW = st.lists(CELL, min_size=0, max_size=4).map("\t".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(["user_id:token\titem_id:token", "user_id:token\titem_id:token\t"
                               "rating:float", "user_id:token\titem_id:token\tlabel:float",
                               "user_id\titem_id", ""]),
       rows=st.lists(ROW, max_size=5), kg=st.lists(ROW, max_size=4), raw=st.binary(max_size=30),
       use_raw=st.booleans(), threshold=st.one_of(st.none(), st.floats(0, 5)))
def test_atomic_reader_random_input(tmp_path_factory, header, rows, kg, raw, use_raw, threshold):
    d = tmp_path_factory.mktemp("a")
    (d / f"{d.name}.inter").write_text("\n".join([header, *rows]) + "\n")
    kg_text = "\n".join(["head_id:token\trelation_id:token\ttail_id:token", *kg]) + "\n"
    (d / f"{d.name}.kg").write_bytes(raw if use_raw else kg_text.encode())
    try:
        ds = load_atomic(d, rating_threshold=threshold)
    except KGRecError:
        event("refused")
        return
    event("read")
    assert ds.n_items >= 1
