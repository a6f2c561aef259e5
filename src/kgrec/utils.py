"""Small helpers shared by the library, the CLI and the benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere :mod:`platform`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                name = line.split(":", 1)[1].strip()
                if name:
                    return " ".join(name.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_description(device: str | None = None) -> str:
    """One line naming the machine a result was measured on, read from the machine:
    ``CPU model (N cores), torch VERSION[, device NAME]`` where ``device`` (a torch device
    string such as ``cuda`` or ``cuda:1``) adds the GPU's name when it is a CUDA device."""
    import torch

    text = f"{cpu_model()} ({cpu_cores()} cores), torch {torch.__version__}"
    if device and str(device).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() \
            else "CUDA device (not visible here)"
        text += f", device {device}: {name}"
    else:
        text += ", device cpu"
    return text
