"""`kgrec datasets download` against a loopback HTTP server serving the real files."""

import functools
import http.server
import threading

import pytest

from kgrec.data import download, load_dataset
from kgrec.data.registry import DATASETS
from kgrec.errors import DataError


@pytest.fixture
def mirror(tmp_path, real_data):
    """A local mirror laid out as the public sources are (repo/commit/path)."""
    root = tmp_path / "mirror"
    for rf in DATASETS["lastfm"].files:
        dest = root / rf.remote
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((real_data / "lastfm" / rf.local).read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_then_load(mirror, tmp_path):
    _, url = mirror
    folder = download("lastfm", tmp_path / "data", base_url=url)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["user_artists.dat", "kg.txt", "item_index2entity_id.txt"])
    assert load_dataset("lastfm", data_dir=tmp_path / "data").stats()["interactions"] == 42346


def test_checksum_mismatch_keeps_nothing(mirror, tmp_path):
    root, url = mirror
    (root / DATASETS["lastfm"].files[1].remote).write_bytes(b"tampered\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        download("lastfm", tmp_path / "data", base_url=url)
    assert not (tmp_path / "data" / "lastfm" / "kg.txt").exists()
    assert not list((tmp_path / "data" / "lastfm").glob("*.tmp"))


def test_unreachable_source(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        download("lastfm", tmp_path / "data", base_url="http://127.0.0.1:9", timeout=2)
