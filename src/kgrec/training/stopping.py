"""Early stopping on a validation metric (higher is better unless ``mode="min"``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class EarlyStopper:
    patience: int
    mode: str = "max"
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def __post_init__(self) -> None:
        if self.mode == "min" and self.best == -math.inf:
            self.best = math.inf

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; return ``True`` when it is the best so far."""
        better = value > self.best if self.mode == "max" else value < self.best
        if better and not math.isnan(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs > self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
