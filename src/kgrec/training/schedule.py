"""Task schedules: which task each optimisation step trains (MKR Algorithm 1)."""

from __future__ import annotations

from collections.abc import Iterator

from kgrec.errors import ConfigError


def task_cycle(schedule: list[tuple[str, int]], tasks: tuple[str, ...]) -> Iterator[str]:
    """Repeat ``schedule`` (``[(task, steps), ...]``) forever, one task name per step.

    ``[("rec", 3), ("kge", 1)]`` gives Algorithm 1's ``t = 3`` recommendation steps per
    KGE step.
    """
    check_schedule(schedule, tasks)
    while True:
        for task, steps in schedule:
            yield from [task] * steps


def check_schedule(schedule: list[tuple[str, int]], tasks: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless every task is the model's, steps are ``>= 0`` and
    the main task (``tasks[0]``, whose pass over its data is an epoch) has a step; without
    one an epoch would never end."""
    for task, steps in schedule:
        if task not in tasks:
            raise ConfigError(f"train.schedule names task {task!r}; the model's tasks are "
                              f"{', '.join(tasks)}")
        if steps < 0:
            raise ConfigError(f"train.schedule: steps must be >= 0, got {steps} for {task!r}")
    if not any(steps for task, steps in schedule if task == tasks[0]):
        raise ConfigError(f"train.schedule gives the main task {tasks[0]!r} no step, so an epoch "
                          f"(one pass over its data) would never end; e.g. [[{tasks[0]}, 1]]")


def default_schedule(tasks: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(t, 1) for t in tasks]
