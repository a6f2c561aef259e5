"""The training loop: alternating tasks, validation each epoch, early stopping,
checkpoints and exact resume.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch (batch order,
negatives, dropout), so a run resumed from the checkpoint of epoch ``k`` replays epochs
``k+1, ...`` exactly as an uninterrupted run would.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from kgrec.data.samplers import Sampler
from kgrec.errors import KGRecError
from kgrec.evaluation.ctr import model_device
from kgrec.models.base import Model
from kgrec.training.checkpoint import load_checkpoint, save_checkpoint
from kgrec.training.schedule import task_cycle
from kgrec.training.stopping import EarlyStopper


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + salt * 104_729) % (2**63)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None
    train_seconds: float = 0.0


class Trainer:
    """Runs ``epochs`` passes of the main task's sampler, interleaving the other tasks as
    ``schedule`` says, and keeps the model state that is best on ``validate()[monitor]``.

    Args:
        model: the model; losses come from ``model(batch, task=...)``.
        samplers: one sampler per task; the first task of ``model.tasks`` defines an epoch.
        optimizers: one optimiser per task (tasks may have their own learning rates).
        schedule: ``[(task, steps), ...]`` repeated within an epoch.
        validate: returns validation metrics of the current model.
        monitor: the key of ``validate()`` used for model selection and early stopping.
        eval_every: validate after every ``eval_every``-th epoch (and the last); patience
            counts validations.
        checkpoint: file written after every epoch (``None``: no checkpoints).
    """

    def __init__(
        self,
        model: Model,
        samplers: dict[str, Sampler],
        optimizers: dict[str, torch.optim.Optimizer],
        schedule: list[tuple[str, int]],
        validate: Callable[[], dict[str, float]],
        monitor: str,
        epochs: int,
        patience: int,
        seed: int = 0,
        checkpoint: str | Path | None = None,
        progress: bool | None = None,
        extra_state: dict | None = None,
        eval_every: int = 1,
    ) -> None:
        self.model = model
        self.samplers = samplers
        self.optimizers = optimizers
        self.schedule = schedule
        self.validate = validate
        self.monitor = monitor
        self.epochs = epochs
        self.seed = seed
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.stopper = EarlyStopper(patience=patience)
        self.eval_every = max(1, int(eval_every))
        self.state = TrainState()
        self.extra_state = extra_state or {}
        self.main_task = model.tasks[0]
        self.device = model_device(model)  # batches are moved there before each step
        #: test hook: stop (as if killed) after this many epochs
        self.stop_after: int | None = None

    # ---- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "stopper": self.stopper.state_dict(),
            "epoch": self.state.epoch,
            "history": self.state.history,
            "best_state": self.state.best_state,
            "train_seconds": self.state.train_seconds,
            **self.extra_state,
        }

    def resume(self, path: str | Path) -> None:
        """Continue from checkpoint ``path``; a checkpoint with missing keys or tensors that
        do not fit this model raises :class:`KGRecError` naming the file."""
        ckpt = load_checkpoint(path, required=("model", "optimizers", "stopper", "epoch", "history",
                                               "best_state", "train_seconds"))
        try:
            self.model.load_state_dict(ckpt["model"])
            for k, o in self.optimizers.items():
                o.load_state_dict(ckpt["optimizers"][k])
            self.stopper.load_state_dict(ckpt["stopper"])
            self.state = TrainState(epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
                                    best_state=ckpt["best_state"],
                                    train_seconds=float(ckpt["train_seconds"]))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise KGRecError(f"{path}: checkpoint does not fit this run's model and "
                             f"optimisers: {_first_line(e)}") from None

    # ---- loop -------------------------------------------------------------------------
    def _aux_batches(self, task: str, epoch: int, salt: int) -> Iterator[dict]:
        k = 0
        while True:
            yield from self.samplers[task].epoch(_epoch_seed(self.seed, epoch, salt + 31 * k))
            k += 1

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the main task's data; returns the mean loss per task."""
        torch.manual_seed(_epoch_seed(self.seed, epoch, 1))
        self.model.train()
        iters = {self.main_task: self.samplers[self.main_task].epoch(_epoch_seed(self.seed, epoch))}
        for k, task in enumerate(self.model.tasks[1:], start=2):
            if task in self.samplers:
                iters[task] = self._aux_batches(task, epoch, k)
        sums = dict.fromkeys(iters, 0.0)
        counts = dict.fromkeys(iters, 0)
        for task in task_cycle(self.schedule, self.model.tasks):
            batch = next(iters[task], None)
            if batch is None:  # the main task's pass is over
                break
            if self.device.type != "cpu":
                batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in batch.items()}
            opt = self.optimizers[task]
            opt.zero_grad(set_to_none=True)
            loss = self.model(batch, task=task)
            loss.backward()
            opt.step()
            sums[task] += loss.item()
            counts[task] += 1
        return {f"loss_{t}": sums[t] / counts[t] for t in sums if counts[t]}

    def fit(self) -> TrainState:
        bar = tqdm(total=self.epochs, initial=self.state.epoch, disable=not self.progress,
                   desc="train", unit="epoch", leave=False)
        try:
            while self.state.epoch < self.epochs and not self.stopper.should_stop:
                epoch = self.state.epoch
                t0 = time.perf_counter()
                losses = self.train_epoch(epoch)
                self.state.train_seconds += time.perf_counter() - t0
                diverged = [k for k, v in losses.items() if not math.isfinite(v)]
                if diverged:  # the last checkpoint (previous epoch) stays as it was
                    raise KGRecError(f"training diverged at epoch {epoch + 1}: "
                                     f"{', '.join(diverged)} is not finite; lower train.lr")
                due = (epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs
                metrics = self.validate() if due else {}
                value = metrics.get(self.monitor, math.nan)
                if due and self.stopper.update(value, epoch):
                    self.state.best_state = copy.deepcopy(self.model.state_dict())
                self.state.epoch = epoch + 1
                self.state.history.append({"epoch": epoch, **losses,
                                           **{f"valid_{k}": v for k, v in metrics.items()}})
                if self.checkpoint is not None:
                    save_checkpoint(self.checkpoint, self.state_dict())
                bar.update(1)
                bar.set_postfix({self.monitor: f"{value:.4f}", **{k: f"{v:.4f}" for k, v in losses.items()}})
                if self.stop_after is not None and self.state.epoch >= self.stop_after:
                    raise KeyboardInterrupt("stopped by test hook")
        finally:
            bar.close()
        if self.state.best_state is not None:
            self.model.load_state_dict(self.state.best_state)
        return self.state
