"""torch.distributed helpers: process-group setup from torchrun's environment, rank and
world size, sharding ranges, and the collectives the trainer and the evaluation use.

Launch with ``torchrun --nproc-per-node N -m kgrec train CONFIG`` (one machine) or with
``--nnodes``/``--rdzv-backend c10d --rdzv-endpoint HOST:PORT`` (several). torchrun sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them
(or with ``WORLD_SIZE=1``) everything here is a no-op and training is one process.
Backend: gloo on CPU, NCCL on CUDA (each process on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from kgrec.errors import ConfigError


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


def launched() -> bool:
    """Started by torchrun (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as the launcher set it (known before the group exists)."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


@contextlib.contextmanager
def silenced(logger: logging.Logger) -> Iterator[None]:
    """``logger`` disabled while the block runs (the log of ranks other than 0)."""
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def init_from_env(device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group torchrun describes in the environment.

    Returns ``(device, created)``: the device of this process (``cuda:LOCAL_RANK`` for a
    CUDA config) and whether this call created the group (its caller destroys it).
    A no-op for a single process or an already initialised group.
    """
    if not launched():
        return device, False
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but torch sees {torch.cuda.device_count()} "
                              "CUDA device(s); use --nproc-per-node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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
