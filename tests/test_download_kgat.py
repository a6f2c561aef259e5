"""KGAT's Amazon-book and Yelp2018 as named downloads: pinned sha256 / git blob ids,
zipped KG extracted, read as the KGAT layout (a loopback mirror of small files)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import io
import threading
import zipfile

import pytest

from kgrec.data import download, load_dataset, registry
from kgrec.data.registry import DATASETS, git_blob_id
from kgrec.errors import DataError

FILES = {
    "train.txt": b"0 0 1\n1 1 2 3\n2 0 3\n",
    "test.txt": b"0 2\n1 0\n2 1\n",
    "user_list.txt": b"org_id remap_id\nu0 0\nu1 1\nu2 2\n",
    "item_list.txt": b"org_id remap_id freebase_id\ni0 0 m.0\ni1 1 m.1\ni2 2 m.2\ni3 3 m.3\n",
    "entity_list.txt": b"org_id remap_id\nm.0 0\nm.1 1\nm.2 2\nm.3 3\nm.4 4\n",
    "relation_list.txt": b"org_id remap_id\nr.a 0\nr.b 1\n",
}
KG = b"0 0 4\n1 1 4\n2 0 3\n"


def test_kgat_releases_are_pinned():
    for name in ("amazon-book", "yelp2018"):
        spec = DATASETS[name]
        assert spec.default_layout == "kgat"
        for rf in spec.files:
            assert rf.sha256 or rf.git_blob, rf.local
            assert registry.KGAT_COMMIT in rf.remote
        assert {rf.local for rf in spec.files} == {*FILES, "kg_final.txt"}
    assert git_blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Small files at the release's paths, the registry pinned to their checksums."""
    root = tmp_path / "mirror"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("kg_final.txt", KG)
    content = {**FILES, "kg_final.txt.zip": buf.getvalue()}
    files = []
    for rf in DATASETS["amazon-book"].files:
        data = content[rf.remote.rsplit("/", 1)[-1]]
        (root / rf.remote).parent.mkdir(parents=True, exist_ok=True)
        (root / rf.remote).write_bytes(data)
        files.append(dataclasses.replace(
            rf, sha256=registry._sha256(data) if rf.sha256 else None,
            git_blob=git_blob_id(data) if rf.git_blob else None))
    spec = dataclasses.replace(DATASETS["amazon-book"], files=tuple(files))
    monkeypatch.setitem(DATASETS, "amazon-book", spec)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_extracts_the_kg_and_reads_the_kgat_layout(mirror, tmp_path):
    _, url = mirror
    folder = download("amazon-book", tmp_path / "data", base_url=url)
    assert (folder / "kg_final.txt").read_bytes() == KG
    ds = load_dataset("amazon-book", data_dir=tmp_path / "data")
    assert ds.meta["layout"] == "kgat" and ds.n_users == 3 and ds.n_entities == 5
    assert len(ds.triples) == 3


def test_a_wrong_git_blob_keeps_nothing(mirror, tmp_path):
    root, url = mirror
    zipped = next(rf for rf in DATASETS["amazon-book"].files if rf.member)
    (root / zipped.remote).write_bytes(b"not the archive")
    with pytest.raises(DataError, match="expected git blob"):
        download("amazon-book", tmp_path / "data", base_url=url)
    assert not (tmp_path / "data" / "amazon-book" / "kg_final.txt").exists()
