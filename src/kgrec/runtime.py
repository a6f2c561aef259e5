"""Process settings for kgrec's compute commands: glibc's allocator.

A training step frees and reallocates the same large tensors (activations, dense gradients
of embedding tables, optimiser temporaries) every step. glibc's ``malloc`` serves blocks
above its mmap threshold with ``mmap`` and returns them with ``munmap`` on free, so every
step page-faults freshly zeroed memory from the kernel: a CKE Book-Crossing epoch spent about
half its time in the kernel and ran 2.1x faster with this setting (docs/results.md, block
``speed:allocator``).
:func:`tune_allocator` tells glibc to keep freed memory in the process instead, with
``mallopt`` (``man 3 mallopt``), the same as setting ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=... MALLOC_TOP_PAD_=268435456`` before the process starts:

* ``M_MMAP_MAX = 0``: no ``mmap`` for large blocks, so they come from the heap and are
  reused after ``free``;
* ``M_TRIM_THRESHOLD = -1``: never give the heap's free top back to the kernel
  (``mallopt``'s value is an ``int``; -1 is the documented "disable trimming");
* ``M_TOP_PAD = 256 MiB``: grow the heap in large steps (fewer ``brk`` calls).

The trade-off: memory a process frees stays in it, so its resident size stays at its peak
(it is reused, not leaked). That suits a training or evaluation process, which ends; not a
long-lived server (``kgrec serve`` leaves the allocator as it is).

No-op, saying why, when the C library is not glibc (macOS, Windows, musl), when
``KGREC_MALLOC=default`` (the opt-out), or when the user set glibc's allocator through the
environment already (any ``MALLOC_*`` variable, or ``glibc.malloc`` tunables in
``GLIBC_TUNABLES``): their choice wins.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import NamedTuple

from kgrec.errors import ConfigError

__all__ = ["ENV_VAR", "AllocatorSetting", "tune_allocator"]

logger = logging.getLogger("kgrec")

ENV_VAR = "KGREC_MALLOC"
CHOICES = ("tuned", "default")
# glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
TOP_PAD = 256 << 20
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1), (M_TOP_PAD, TOP_PAD))


class AllocatorSetting(NamedTuple):
    """What :func:`tune_allocator` did: ``applied`` and, in words, why or why not."""

    applied: bool
    reason: str


_last: AllocatorSetting | None = None  # the last outcome logged


def _user_set_allocator(environ) -> str | None:
    """The environment variable through which the user already configured glibc's malloc."""
    for name in sorted(environ):
        if name.startswith("MALLOC_"):
            return name
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    return None


def _glibc():
    """The process's C library when it is glibc (it has ``gnu_get_libc_version`` and
    ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None  # musl and others
    return libc


def tune_allocator(environ=None) -> AllocatorSetting:
    """Tell glibc's ``malloc`` to keep freed memory in the process (see the module's doc);
    log and return whether it did. ``environ`` defaults to ``os.environ``.

    Raises:
        ConfigError: ``KGREC_MALLOC`` is neither ``tuned`` nor ``default``.
    """
    environ = os.environ if environ is None else environ
    choice = environ.get(ENV_VAR, "tuned").strip().lower() or "tuned"
    if choice not in CHOICES:
        raise ConfigError(f"{ENV_VAR}={environ[ENV_VAR]!r}: expected one of {', '.join(CHOICES)}")
    if choice == "default":
        result = AllocatorSetting(False, f"{ENV_VAR}=default")
    elif (name := _user_set_allocator(environ)) is not None:
        result = AllocatorSetting(False, f"{name} is set in the environment")
    elif (libc := _glibc()) is None:
        result = AllocatorSetting(False, "the C library is not glibc")
    else:
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        failed = [param for param, value in SETTINGS if libc.mallopt(param, value) != 1]
        result = (AllocatorSetting(True, "glibc mallopt: M_MMAP_MAX=0, M_TRIM_THRESHOLD=-1, "
                                         f"M_TOP_PAD={TOP_PAD}") if not failed else
                  AllocatorSetting(False, f"glibc mallopt refused parameter(s) {failed}"))
    global _last
    if result != _last:  # said once, not on every kgrec.train() of a session
        logger.info("allocator: freed memory kept by the process (%s; %s=default to opt out)"
                    if result.applied else "allocator: glibc's defaults (%s)",
                    *((result.reason, ENV_VAR) if result.applied else (result.reason,)))
        _last = result
    return result
