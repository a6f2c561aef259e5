"""Run folders: an exclusive lock per folder, and the fingerprint of the prepared data that
ties a checkpoint or a saved model to the data it was trained on.

The lock is ``OUT/.kgrec.lock``, held with ``flock`` for the whole run and holding the
owner's pid and host. A second run into the same folder fails at once with
:class:`~kgrec.errors.OutputError` naming the owner; the lock goes with the process (exit,
Ctrl-C or kill -9), so a lock file left by a dead process is simply taken over. Under
``torchrun`` only rank 0 locks (the ranks of one run share the folder); on a file system
without ``flock`` support the run goes on unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
from pathlib import Path

import numpy as np

from kgrec.data.dataset import KGDataset, Split
from kgrec.data.registry import ensure_dir
from kgrec.errors import OutputError

LOCK_NAME = ".kgrec.lock"


class RunLock:
    """Exclusive lock on run folder ``out`` (a context manager; see the module doc)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        if os.environ.get("RANK", "0") != "0":
            return self
        ensure_dir(self.out)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise OutputError(self.out, f"cannot create the run lock ({e.strerror}); the "
                                        "folder is read-only or not yours") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            owner = _read_owner(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(self.out, f"in use by another kgrec run ({owner}); wait for it "
                                            "to finish or choose another --out") from None
            return self  # a file system without locks (some network mounts): run unlocked
        with contextlib.suppress(OSError):  # the owner note is informative only
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "owner unknown"


def data_fingerprint(dataset: KGDataset, split: Split) -> str:
    """sha256 (hex, 32 chars) of the prepared data a run trains and evaluates on: the
    counts, the interactions, the triples, the item-entity alignment, the split parts and
    the KG split."""
    h = hashlib.sha256()
    h.update(repr((dataset.n_users, dataset.n_items, dataset.n_entities,
                   dataset.n_relations)).encode())
    arrays = [dataset.interactions, dataset.triples, dataset.item_entity,
              split.train, split.valid, split.test]
    if dataset.kg_split:
        arrays += [dataset.kg_split[k] for k in sorted(dataset.kg_split)]
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.int64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:32]
