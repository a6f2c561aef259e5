"""Checkpoints: state dicts and plain data only, saved atomically, loaded with
``weights_only=True``. A file that is not a readable dict, or lacks a key the caller
needs, raises :class:`~kgrec.errors.KGRecError` naming the file."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from kgrec.data.registry import atomic_write_bytes
from kgrec.errors import KGRecError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path, required: Iterable[str] = ()) -> dict[str, Any]:
    """The dict saved in ``path``; ``required`` keys must be present."""
    p = Path(path)
    if p.is_dir():
        raise KGRecError(f"{p}: is a folder, not a checkpoint")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise KGRecError(f"{p}: checkpoint not found") from None
    except Exception as e:  # a truncated or foreign file
        raise KGRecError(f"{p}: not a readable kgrec checkpoint: {e}") from None
    if not isinstance(ckpt, dict):
        raise KGRecError(f"{p}: not a kgrec checkpoint (holds a {type(ckpt).__name__}, "
                         "not a dict)")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise KGRecError(f"{p}: not a complete kgrec checkpoint: missing {', '.join(missing)}")
    return ckpt
