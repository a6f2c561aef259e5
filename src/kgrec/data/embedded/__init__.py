"""Datasets shipped inside the package, so that the main job runs with no data folder and no
network: Last.FM as MKR processed it (``lastfm/``; sources, checksums and terms in
``lastfm/PROVENANCE.md``).

Each dataset is the processed layout (``ratings_final.txt``, ``kg_final.txt``) gzip-compressed,
plus ``ids.json.gz`` with the original ids that the raw layout's preprocessing assigns (users,
items, entities, relation names), so the embedded copy is the same :class:`KGDataset` as the
raw files give: same arrays, same ids. The uncompressed bytes are checked against their sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset
from kgrec.errors import DataError

EMBEDDED_DIR = Path(__file__).resolve().parent

#: sha256 of the uncompressed files (as listed in each PROVENANCE.md)
SHA256 = {
    "lastfm": {
        "ratings_final.txt": "a1589f7ff2f36ea25c946900e38c941eb6d8fae27422b32c73dc571d731e1c70",
        "kg_final.txt": "ff58147005e774652ebf435e9a8c3f0c3e2ffe9a54087eab00fd9c5413040bc8",
        "ids.json": "60d833b1122d2e0e75ef9ca500712dace3affc49a5efb67712f0ddff94dbc3c0",
    },
}


def available(name: str) -> bool:
    """Whether dataset ``name`` is shipped with the package."""
    return name in SHA256 and all((EMBEDDED_DIR / name / f"{f}.gz").is_file() for f in SHA256[name])


def read_bytes(name: str, file: str) -> bytes:
    """The uncompressed bytes of an embedded file, checked against its sha256."""
    path = EMBEDDED_DIR / name / f"{file}.gz"
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise DataError(path, None, f"cannot read the embedded copy: {e}") from None
    if hashlib.sha256(data).hexdigest() != SHA256[name][file]:
        raise DataError(path, None, "embedded file does not match its sha256 (damaged install?)")
    return data


def _table(name: str, file: str) -> np.ndarray:
    return np.array(read_bytes(name, file).split(), dtype=np.int64).reshape(-1, 3)


def load_embedded(name: str) -> KGDataset:
    """The embedded copy of dataset ``name``."""
    if not available(name):
        raise DataError(EMBEDDED_DIR / name, None, "no embedded copy of this dataset")
    inter, kg = _table(name, "ratings_final.txt"), _table(name, "kg_final.txt")
    ids = json.loads(read_bytes(name, "ids.json"))
    n_items = len(ids["item_ids"])
    return KGDataset(
        name=name,
        interactions=inter,
        triples=kg,
        item_entity=np.arange(n_items, dtype=np.int64),  # items are entities 0..n_items-1
        n_users=len(ids["user_ids"]),
        n_items=n_items,
        n_entities=len(ids["entity_ids"]),
        n_relations=len(ids["relation_names"]),
        user_ids=ids["user_ids"],
        item_ids=ids["item_ids"],
        entity_ids=ids["entity_ids"],
        relation_names=ids["relation_names"],
        meta={"source": f"embedded copy ({EMBEDDED_DIR / name})"},
    )
