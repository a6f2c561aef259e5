"""Collectives over an initialised ``torch.distributed`` process group: rank, world size,
contiguous shards, broadcast, gather and sum. Every function is a no-op in one process.

The low layer under both training and evaluation (evaluation shards its rankings with these);
process-group set-up from torchrun's environment is ``kgrec.training.distributed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """A process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes files and logs."""
    return rank() == 0


def shard_bounds(n: int, r: int | None = None, w: int | None = None) -> tuple[int, int]:
    """Contiguous part ``[start, stop)`` of ``range(n)`` for rank ``r`` of ``w``; sizes
    differ by at most one (as ``np.array_split``), earlier ranks take the larger parts."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    q, m = divmod(n, w)
    start = r * q + min(r, m)
    return start, start + q + (r < m)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; for small objects and decisions)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_rows(part: np.ndarray) -> np.ndarray:
    """Every rank's ``part`` concatenated in rank order along axis 0, on every rank."""
    if not is_distributed():
        return part
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, np.ascontiguousarray(part))
    return np.concatenate(parts, axis=0)


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64)."""
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()
