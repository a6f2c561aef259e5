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

import torch
import torch.distributed as dist

from kgrec.errors import ConfigError
from kgrec.parallel import (  # noqa: F401  (re-exported: the collectives live in the low layer)
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_rows,
    is_distributed,
    is_main,
    rank,
    shard_bounds,
    world_size,
)


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


