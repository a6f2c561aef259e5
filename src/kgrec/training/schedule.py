"""Task schedules: which task each optimisation step trains (MKR Algorithm 1)."""

from __future__ import annotations

from collections.abc import Iterator

from kgrec.errors import ConfigError


def task_cycle(schedule: list[tuple[str, int]], tasks: tuple[str, ...]) -> Iterator[str]:
    """Repeat ``schedule`` (``[(task, steps), ...]``) forever, one task name per step.

    ``[("rec", 3), ("kge", 1)]`` gives Algorithm 1's ``t = 3`` recommendation steps per
    KGE step.
    """
    for task, steps in schedule:
        if task not in tasks:
            raise ConfigError(f"schedule names task {task!r}; the model's tasks are {tasks}")
        if steps < 0:
            raise ConfigError(f"schedule steps must be >= 0, got {steps} for {task!r}")
    if not any(steps for _, steps in schedule):
        raise ConfigError("schedule has no step")
    while True:
        for task, steps in schedule:
            yield from [task] * steps


def default_schedule(tasks: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(t, 1) for t in tasks]
