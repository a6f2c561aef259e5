"""Checkpoints: state dicts and plain data only, saved atomically, loaded with
``weights_only=True``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from kgrec.data.registry import atomic_write_bytes
from kgrec.errors import KGRecError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise KGRecError(f"{path}: checkpoint not found") from None
    except Exception as e:  # a truncated or foreign file
        raise KGRecError(f"{path}: not a readable kgrec checkpoint: {e}") from None
