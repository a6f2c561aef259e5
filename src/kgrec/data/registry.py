"""Named datasets: where their files live, how to read them, where to download them.

A data folder is resolved as: the explicit ``data_dir`` option, then ``$KGREC_DATA``, then
the user cache (``$KGREC_CACHE`` or ``$XDG_CACHE_HOME/kgrec`` or ``~/.cache/kgrec``), into
which :func:`download` fetches a named dataset from its public source. Preprocessed raw
data is cached there as ``.npz``, written atomically and keyed by the sha256 of the input
files' contents (a file changed in place, even with the same size and mtime, is
preprocessed again); an unreadable or truncated cache file is rebuilt.

Every downloaded file is pinned by sha256 (for a zip archive: the archive and the member
taken from it), streamed to disk under a size limit and written atomically. A file with
no trustworthy published sha256 (MovieLens-1M's ``ml-1m.zip``: GroupLens publishes only
an MD5) is not downloaded: the user is told where to fetch it and where to put it, and
a copy already in place is used as it is. A dataset shipped with the package
(:mod:`kgrec.data.embedded`: ``lastfm``) is used when the data folder does not have it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kgrec.data import embedded
from kgrec.data.dataset import KGDataset
from kgrec.data.readers import mkr
from kgrec.errors import ConfigError, DataError, OutputError
from kgrec.logs import logger

CACHE_VERSION = 2
#: largest file (archive or member) :func:`download` accepts, in bytes
MAX_DOWNLOAD_BYTES = 256 * 2**20
MKR_COMMIT = "d6bb77c426960bc04f5d88c39f09d87a844776b4"
SARC_COMMIT = "5dddf8003c066ab73084b859011c559b0e4f111d"
MTL_COMMIT = "a9ed2d1844c19447fe544a95dda9686db1022479"
GITHUB_RAW = "https://raw.githubusercontent.com"
GROUPLENS = "https://files.grouplens.org/datasets/movielens"
KGAT_COMMIT = "c03737be46ac26a0b5431efe149828e982ffbbfb"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: local path (relative to the dataset folder), source URL
    path (relative to ``base``), its pin (``sha256``, or ``git_blob`` for files known only
    from their repository's tree; neither: no trustworthy hash is known, and the file is not
    downloaded) and, for zip archives, the member to extract (a pinned archive pins its
    members; ``member_sha256`` checks the member too when known)."""

    local: str
    remote: str
    base: str = GITHUB_RAW
    sha256: str | None = None
    member: str | None = None
    member_sha256: str | None = None
    git_blob: str | None = None
    max_bytes: int | None = None  # default MAX_DOWNLOAD_BYTES

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.git_blob is not None


@dataclass(frozen=True)
class DatasetSpec:
    folder: str
    description: str
    raw_ratings: str | None = None
    raw_format: str | None = None
    threshold: float = 0.0
    processed: str | None = "processed"
    default_layout: str = "raw"
    files: tuple[RemoteFile, ...] = field(default_factory=tuple)


def _mkr(local: str, remote: str, sha: str) -> RemoteFile:
    return RemoteFile(local, f"hwwang55/MKR/{MKR_COMMIT}/data/{remote}", sha256=sha)


DATASETS: dict[str, DatasetSpec] = {
    "lastfm": DatasetSpec(
        folder="lastfm",
        description="Last.FM (HetRec 2011) with the Satori KG, as in MKR",
        raw_ratings="user_artists.dat", raw_format="lastfm", threshold=0, default_layout="raw",
        files=(
            _mkr("user_artists.dat", "music/user_artists.dat",
                 "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416"),
            _mkr("kg.txt", "music/kg.txt",
                 "aa899f22a7a3b313e0baa22113fcd5fa040675fde44822152afed9900d33325f"),
            _mkr("item_index2entity_id.txt", "music/item_index2entity_id.txt",
                 "496475ddc39b0e15956c58b86d0566bce96bf51c7daaa49d66bc1b9fefaeef1a"),
        ),
    ),
    "book": DatasetSpec(
        folder="book",
        description="Book-Crossing, RippleNet's processed release (HKRM Table 1)",
        raw_ratings="BX-Book-Ratings.csv", raw_format="bookcrossing", threshold=0,
        default_layout="processed",
        files=(
            RemoteFile("processed/ratings_final.txt",
                       f"weifeng-ai/SARC/{SARC_COMMIT}/data/book/ratings_final.txt",
                       sha256="a2dbed819fe3691fb0c5f58bd0ba018ad493339c1270d331e1c5f52cffe3df37"),
            RemoteFile("processed/kg_final.txt",
                       f"weifeng-ai/SARC/{SARC_COMMIT}/data/book/kg_final.txt",
                       sha256="60a4a2c2e6f101fbbd5763c72be3ed4f565498e7f6c8660eb19fe598dc7158b2"),
            _mkr("kg.txt", "book/kg.txt",
                 "7428883f6003d60c2fca567784aaf8d6b931f99c51ab85c93d07017ce1a24aac"),
            _mkr("item_index2entity_id.txt", "book/item_index2entity_id.txt",
                 "e77bbc7fd784c75436ee2df2b0c56d914b6aefc4bc428a27defd16cb9aaa953c"),
        ),
    ),
    "book-mkr": DatasetSpec(
        folder="book",
        description="Book-Crossing processed by MKR's script from the 14,910-item map",
        processed="processed_mkr", default_layout="processed",
        files=(
            RemoteFile("processed_mkr/ratings_final.txt",
                       f"QinghongChen/MTL-KCF/{MTL_COMMIT}/data/book/ratings_final.txt",
                       sha256="dbb7ec62735d027484bdd5c9aca4fae8eba8b952e65faf25fb7b0d258e5568d7"),
            RemoteFile("processed_mkr/kg_final.txt",
                       f"QinghongChen/MTL-KCF/{MTL_COMMIT}/data/book/kg_final.txt",
                       sha256="910e40ce4b52a99bcfbfbdc8e53a9442bbb45ab6d7a2fd6d612ef614c75fd6da"),
        ),
    ),
    "movie": DatasetSpec(
        folder="movie",
        description="MovieLens-1M with the Satori KG, as in MKR (ratings from GroupLens)",
        raw_ratings="ratings.dat", raw_format="movielens", threshold=4, processed=None,
        default_layout="raw",
        files=(
            _mkr("kg.txt", "movie/kg.txt",
                 "60d0a28e8646423654b47a36b4438dcd70a87ac90a7d1512ef0cf59f19c869a9"),
            _mkr("item_index2entity_id.txt", "movie/item_index2entity_id.txt",
                 "ba88da11d2fffdcea4fc0d73f1fd16f5478d8fcfb362e16331dc30cceea81f60"),
            RemoteFile("ratings.dat", "ml-1m.zip", base=GROUPLENS, member="ml-1m/ratings.dat"),
        ),
    ),
}


def _kgat(name: str, sha: dict[str, str], blob: dict[str, str]) -> tuple[RemoteFile, ...]:
    """KGAT's release of ``name`` (github.com/xiangwang1223/knowledge_graph_attention_network
    at ``KGAT_COMMIT``, ``Data/<name>/``): sha256 of the files read from that commit, git
    blob ids from its tree for the files not read (``kg_final.txt`` ships zipped)."""
    def rf(local: str, remote: str | None = None, member: str | None = None) -> RemoteFile:
        remote = remote or local
        return RemoteFile(local, f"xiangwang1223/knowledge_graph_attention_network/"
                          f"{KGAT_COMMIT}/Data/{name}/{remote}", sha256=sha.get(local),
                          member=member, git_blob=blob.get(remote))
    names = ("train.txt", "test.txt", "user_list.txt", "item_list.txt", "entity_list.txt",
             "relation_list.txt")
    return (*(rf(n) for n in names), rf("kg_final.txt", "kg_final.txt.zip", "kg_final.txt"))


DATASETS["amazon-book"] = DatasetSpec(
    folder="amazon-book", description="Amazon-book as released with KGAT (JNSKR Table 2)",
    processed=None, default_layout="kgat",
    files=_kgat("amazon-book", {
        "train.txt": "4d10106bb06a77e11df660429903c0067aeb85b86431807836b0d8b7edc30c38",
        "test.txt": "f47eff9d35fb95c07d74251a991478a84095ce6c5969b0dafcb4afe99fc716ec",
        "user_list.txt": "ae2e001d4e49fd82d4c7e25f950827a8be2fbd5c6f3a16dacb2d104edb32310e",
        "item_list.txt": "efea8518cd68e515584fdfbfca95f318b25ef551c64498c5935897c2b02e436f",
        "entity_list.txt": "b03e9cb7eeab38756f0b10c06478a611201a7d42cb16acb8513624dda05270ca",
        "relation_list.txt": "50fe9c6560224b20d8ace78ae8ca0b8dad39248f6dc900f6744b633ba8c33f4b",
    }, {"kg_final.txt.zip": "7eedb0ed50a9bae8a89ef2193b3a9fb1bf9ed03e"}))
DATASETS["yelp2018"] = DatasetSpec(
    folder="yelp2018", description="Yelp2018 as released with KGAT (JNSKR Table 2)",
    processed=None, default_layout="kgat",
    files=_kgat("yelp2018", {
        "test.txt": "ad1034bf609176893abcce4b7b9266d9f02fcc05e13966aa078b432df02a78f0",
        "user_list.txt": "49b8f178a6a6ee71d0d0b06242628afe9289d27734d44fa31f6d07aa4611b7be",
        "item_list.txt": "1ba988c00ea8d97945a5fb0f6cbb3867e55f327e2c341bcfe55c5a5584b06a9d",
        "entity_list.txt": "bb6390ee1568eed802d5113a6b4b38e76402bce88519186d2a99402955571801",
        "relation_list.txt": "f5b19de6fc169ec6f4ac9943cce7614d1427b32130a6063f990721b45e636abc",
    }, {"train.txt": "c834b6e61cbb6a716b039367f3ddd711ca3a2483",
        "kg_final.txt.zip": "9a11bad2806d43f613787f000d8d826f3bc91767"}))


def cache_dir() -> Path:
    """The user cache folder for downloads and preprocessed data."""
    if os.environ.get("KGREC_CACHE"):
        return Path(os.environ["KGREC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kgrec"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Explicit option, then ``$KGREC_DATA``, then the user cache's ``data`` folder."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("KGREC_DATA"):
        return Path(os.environ["KGREC_DATA"])
    return cache_dir() / "data"


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def dataset_source(spec: DatasetSpec) -> str:
    """Where ``kgrec datasets download`` fetches a dataset from: GitHub repositories at
    pinned commits and other hosts, comma-separated."""
    sources: dict[str, None] = {}
    for rf in spec.files:
        if rf.base == GITHUB_RAW:
            owner, repo, commit = rf.remote.split("/")[:3]
            sources[f"github.com/{owner}/{repo}@{commit[:7]}"] = None
        else:
            sources[f"{rf.base.split('://', 1)[-1]}/{rf.remote}"] = None
    return ", ".join(sources) or "-"


def dataset_status(name: str, data_dir: str | Path | None = None) -> tuple[str, Path, list[str]]:
    """``(state, folder, missing files)`` of a named dataset in the data folder; ``state``
    is ``present`` (every downloadable file is there), ``partial`` or ``absent``."""
    spec = get_spec(name)
    folder = resolve_data_dir(data_dir) / spec.folder
    missing = [rf.local for rf in spec.files if not (folder / rf.local).is_file()]
    state = "absent" if len(missing) == len(spec.files) else "partial" if missing else "present"
    return state, folder, missing


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back)
    os.umask(mask)
    return mask


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device; nothing was written"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write here ({e.strerror}): the folder is read-only or not yours"
    if e.errno == errno.ENOTDIR:
        return "cannot write here: a file stands where a folder is needed"
    if e.errno == errno.EISDIR:
        return "is a folder, not a file"
    return f"cannot write: {e.strerror or e}"


def ensure_dir(path: str | Path) -> Path:
    """Create folder ``path`` (and parents); an unusable path raises :class:`OutputError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(path, "exists and is not a folder") from None
    except OSError as e:
        raise OutputError(path, _why(e)) from None
    return path


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` only when the block ends
    without error; else nothing is left behind. The file gets the mode a plain ``open``
    would (``0o666`` less the umask: group-readable under the usual umask), not the
    ``0o600`` of a temporary file. Failures to write raise :class:`OutputError`."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file")
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(path, _why(e)) from None
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as f:
                yield f
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(path, _why(e)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fingerprint(paths: list[Path], extra: dict) -> str:
    """Cache key: sha256 of the options and of every input file's contents."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **extra}, sort_keys=True).encode())
    for p in paths:
        try:
            h.update(file_sha256(p).encode())
        except OSError as e:
            raise DataError(p, None, f"cannot read: {e.strerror or e}") from None
    return h.hexdigest()[:32]


_LIST_FIELDS = ("user_ids", "item_ids", "entity_ids", "relation_names")


def save_npz(dataset: KGDataset, path: Path) -> None:
    buf = io.BytesIO()
    arrays = {"interactions": dataset.interactions, "triples": dataset.triples,
              "item_entity": dataset.item_entity}
    for name in _LIST_FIELDS:
        values = getattr(dataset, name)
        if values is not None:
            arrays[name] = np.asarray(values, dtype=str)
    meta = {k: getattr(dataset, k) for k in ("name", "n_users", "n_items", "n_entities", "n_relations")}
    meta["meta"] = dataset.meta
    arrays["meta"] = np.asarray(json.dumps(meta))
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: Path) -> KGDataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        lists = {k: z[k].tolist() if k in z.files else None for k in _LIST_FIELDS}
        return KGDataset(interactions=z["interactions"], triples=z["triples"],
                         item_entity=z["item_entity"], **meta, **lists)


def load_dataset(name_or_path: str, layout: str = "auto", data_dir: str | Path | None = None,
                 use_cache: bool = True, rating_threshold: float | None = None) -> KGDataset:
    """Load a named dataset (``lastfm``, ``book``, ``book-mkr``, ``movie``) or a folder: a
    path, or the name of a folder in the data folder (e.g. ``dbbook2014`` for the KTUP release
    placed in ``$KGREC_DATA/dbbook2014``).

    ``layout``: ``raw`` (MKR raw files, preprocessed and cached), ``processed``
    (``ratings_final.txt``/``kg_final.txt``), ``ktup``, ``kgat``, ``csv`` (kgrec's own
    format, string ids), ``atomic`` (RecBole atomic files) or ``auto`` (the named
    dataset's default; for a folder, whichever files are present). ``rating_threshold``
    applies to the ``csv`` and ``atomic`` layouts' rating column.
    """
    if name_or_path in DATASETS:
        spec = get_spec(name_or_path)
        folder = resolve_data_dir(data_dir) / spec.folder
        name = name_or_path
        if _use_embedded(folder, spec, name, layout):
            return embedded.load_embedded(name)
        if not folder.is_dir():
            hint = " (layout auto or processed uses the copy shipped with kgrec)" \
                if embedded.available(name) else ""
            raise DataError(folder, None, f"dataset folder not found; run `kgrec datasets "
                            f"download {name}` or set KGREC_DATA / --data-dir{hint}")
    else:
        spec = None
        folder = Path(name_or_path)
        if not folder.is_dir() and not folder.is_absolute():  # a folder of the data dir
            folder = resolve_data_dir(data_dir) / name_or_path
        name = folder.name
        if not folder.is_dir():
            raise ConfigError(f"{name_or_path!r} is neither a known dataset "
                              f"({', '.join(sorted(DATASETS))}) nor a folder (here or in "
                              f"the data folder {resolve_data_dir(data_dir)})")
    if layout == "auto":
        layout = _detect_layout(folder, spec)
    if rating_threshold is not None and layout not in ("csv", "atomic"):
        raise ConfigError(f"data.rating_threshold applies to the csv and atomic layouts, not {layout!r}")
    if layout == "processed":
        sub = folder / spec.processed if spec and spec.processed else folder
        return mkr.load_processed(sub, name)
    if layout == "raw":
        if spec is None:
            raise ConfigError("layout raw needs a named dataset (to know the ratings format)")
        if spec.raw_ratings is None:
            raise ConfigError(f"dataset {name!r} has no raw layout")
        return _load_raw_cached(folder, name, spec, use_cache)
    if layout == "ktup":
        from kgrec.data.readers import ktup  # written with the KTUP models

        return ktup.load_ktup(folder, name)
    if layout == "kgat":
        from kgrec.data.readers import kgat  # written with JNSKR

        return kgat.load_kgat(folder, name)
    if layout == "csv":
        from kgrec.data.readers import custom

        return custom.load_custom(folder, name, rating_threshold)
    if layout == "atomic":
        from kgrec.data.readers import recbole

        return recbole.load_atomic(folder, name, rating_threshold)
    raise ConfigError(f"unknown layout {layout!r}")


def _use_embedded(folder: Path, spec: DatasetSpec, name: str, layout: str) -> bool:
    """Whether the copy shipped in the package stands in for the data folder: only for
    layouts ``auto``/``processed`` and when the folder lacks the files they would read."""
    if layout not in ("auto", "processed") or not embedded.available(name):
        return False
    has_processed = bool(spec.processed) and (folder / spec.processed / "ratings_final.txt").is_file()
    if layout == "processed":
        return not has_processed
    return not has_processed and not (spec.raw_ratings and (folder / spec.raw_ratings).is_file())


def _detect_layout(folder: Path, spec: DatasetSpec | None) -> str:
    if spec is not None:
        if spec.default_layout == "raw" and not (folder / spec.raw_ratings).is_file() and \
                spec.processed and (folder / spec.processed).is_dir():
            return "processed"
        return spec.default_layout
    if (folder / "ratings_final.txt").is_file():
        return "processed"
    if (folder / "kg" / "e_map.dat").is_file():
        return "ktup"
    if (folder / "train.txt").is_file():
        return "kgat"
    from kgrec.data.readers import custom, recbole

    if custom.is_custom(folder):
        return "csv"
    if recbole.is_atomic(folder):
        return "atomic"
    raise DataError(folder, None, "cannot tell the layout: no ratings_final.txt, kg/, train.txt, "
                    "interactions.csv/.tsv/.txt or *.inter")


def _load_raw_cached(folder: Path, name: str, spec: DatasetSpec, use_cache: bool) -> KGDataset:
    inputs = [folder / spec.raw_ratings, folder / "item_index2entity_id.txt", folder / "kg.txt"]
    for p in inputs:
        if not p.is_file():
            raise DataError(p, None, "file not found (raw layout)")
    key = _fingerprint(inputs, {"name": name, "threshold": spec.threshold, "seed": 555})
    cached = cache_dir() / "processed" / f"{name}-{key}.npz"
    if use_cache and cached.is_file():
        try:
            return load_npz(cached)
        except Exception:  # truncated, foreign or inconsistent (BadZipFile, EOFError, ...)
            with contextlib.suppress(OSError):
                cached.unlink()  # rebuilt below
    logger.info(f"{name}: preprocessing the raw files of {folder} (MKR's script)")
    t0 = time.perf_counter()
    ds = mkr.load_raw(folder, name, spec.raw_ratings, spec.raw_format, spec.threshold)
    logger.info(f"{name}: preprocessed in {time.perf_counter() - t0:.1f}s: {ds.n_users:,} users, "
                f"{len(ds.interactions):,} interactions, {len(ds.triples):,} triples")
    if use_cache:
        with contextlib.suppress(OSError, OutputError):  # a read-only cache only costs speed
            save_npz(ds, cached)
            logger.info(f"{name}: cached as {cached}")
    return ds


def _copy_limited(src: BinaryIO, dst: BinaryIO, limit: int, what: str) -> str:
    """Copy ``src`` to ``dst`` in chunks, at most ``limit`` bytes; return the sha256."""
    h, total = hashlib.sha256(), 0
    while block := src.read(1 << 20):
        total += len(block)
        if total > limit:
            raise DataError(what, None, f"larger than the {limit:,}-byte limit; refused")
        h.update(block)
        dst.write(block)
    return h.hexdigest()


def _check_sha(what: str, expected: str | None, got: str) -> None:
    if got != expected:
        raise DataError(what, None, f"checksum mismatch: expected sha256 {expected}, got {got}")


def git_blob_id(data: bytes) -> str:
    """The git blob id of ``data``: sha1 of ``b"blob <size>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _git_blob_of(f: BinaryIO) -> str:
    """:func:`git_blob_id` of an open file's whole contents, read in chunks."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    h = hashlib.sha1(b"blob %d\0" % size)
    while block := f.read(1 << 20):
        h.update(block)
    return h.hexdigest()


def download(name: str, data_dir: str | Path | None = None, base_url: str | None = None,
             force: bool = False, timeout: float = 60.0) -> Path:
    """Fetch a named dataset's files from their public sources into the data folder.

    ``base_url`` replaces every source host (mirrors and tests). Each file is streamed to
    disk under a size limit, checked against its pinned sha256 (a zip archive and the
    member extracted from it each have one) and written atomically; files already
    present with the right checksum are kept. A file without a pinned sha256 is never
    downloaded: a copy already in place is kept, else :class:`DataError` says where to
    get it once the pinned files are in place.
    """
    spec = get_spec(name)
    folder = resolve_data_dir(data_dir) / spec.folder
    refused: list[str] = []
    for rf in spec.files:
        dest = folder / rf.local
        url = f"{(base_url or rf.base).rstrip('/')}/{rf.remote}"
        if not rf.pinned:
            if not dest.is_file():
                refused.append(f"{dest} (from {url}" + (f", member {rf.member}" if rf.member else "")
                               + ")")
            continue
        final_sha = rf.member_sha256 if rf.member else rf.sha256
        if dest.is_file() and not force and (final_sha is None or file_sha256(dest) == final_sha):
            continue  # verified, or placed there and not checkable
        limit = rf.max_bytes or MAX_DOWNLOAD_BYTES
        ensure_dir(dest.parent)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, \
                    tempfile.TemporaryFile(dir=dest.parent) as raw:
                size = resp.headers.get("Content-Length")
                if size is not None and size.isdigit() and int(size) > limit:
                    raise DataError(url, None, f"{int(size):,} bytes, over the {limit:,}-byte "
                                               "limit; refused")
                got = _copy_limited(resp, raw, limit, url)
                if rf.sha256 is not None:
                    _check_sha(url, rf.sha256, got)
                if rf.git_blob is not None:
                    blob = _git_blob_of(raw)
                    if blob != rf.git_blob:
                        raise DataError(url, None, f"checksum mismatch: expected git blob "
                                                   f"{rf.git_blob}, got {blob}")
                raw.seek(0)
                if rf.member is None:
                    with atomic_file(dest) as out:
                        shutil.copyfileobj(raw, out, 1 << 20)
                else:
                    _extract_member(raw, rf, url, dest, limit)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            raise DataError(url, None, f"download failed: {e}") from None
    if refused:
        raise DataError(name, None, "no trustworthy sha256 is published for "
                        + "; ".join(refused) + ", so kgrec does not download it: fetch it "
                        "yourself, check it, and put the file at that path")
    return folder


def _extract_member(archive: BinaryIO, rf: RemoteFile, url: str, dest: Path, limit: int) -> None:
    """Stream member ``rf.member`` of zip ``archive`` into ``dest``, checking its size and
    sha256."""
    what = f"{url}!{rf.member}"
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            same = [n for n in names if n.rsplit("/", 1)[-1] == rf.member
                    and not n.startswith("__MACOSX")]  # a member given by its base name
            info = z.getinfo(rf.member if rf.member in names or len(same) != 1 else same[0])
            if info.file_size > limit:
                raise DataError(what, None, f"{info.file_size:,} bytes, over the {limit:,}-byte "
                                            "limit; refused")
            with z.open(info) as src, atomic_file(dest) as out:
                got = _copy_limited(src, out, limit, what)
                if rf.member_sha256 is not None:
                    _check_sha(what, rf.member_sha256, got)
    except (zipfile.BadZipFile, KeyError, EOFError, zipfile.LargeZipFile) as e:
        raise DataError(url, None, f"cannot extract {rf.member}: {e}") from None
