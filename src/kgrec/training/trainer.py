"""The training loop: alternating tasks, validation each epoch, early stopping,
checkpoints and exact resume.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch (batch order,
negatives, dropout), so a run resumed from the checkpoint of epoch ``k`` replays epochs
``k+1, ...`` exactly as an uninterrupted run would.

Distributed (``torchrun``, :mod:`kgrec.training.distributed`): ``batch_size`` is the
*global* batch. Every rank draws the same global batch from the shared per-epoch seed and
trains on a contiguous slice of it (``Sampler.shard``, per-rank batch about
``batch_size / world``); the loss goes through a ``DistributedDataParallel`` wrapper
(``find_unused_parameters``: each task leaves some parameters unused), which averages the
gradients, and the rank's loss is scaled as ``Model.batch_reduction`` says, so a step of
``N`` processes equals a step of one process on the whole batch (up to float rounding).
Validation metrics and the early-stopping decision come from rank 0; only rank 0 writes
checkpoints.
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
from kgrec.errors import ConfigError, KGRecError
from kgrec.evaluation.ctr import model_device
from kgrec.models.base import Model
from kgrec.training import distributed as distr
from kgrec.training.checkpoint import load_checkpoint, save_checkpoint
from kgrec.training.schedule import task_cycle
from kgrec.training.stopping import EarlyStopper


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + salt * 104_729) % (2**63)


class _TaskLosses(torch.nn.Module):
    """``{task: model(batch, task=task)}`` of a ``{task: batch}`` dict: the module DDP wraps,
    so that every loss of a step goes through one DDP forward."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, batches: dict[str, dict]) -> dict[str, torch.Tensor]:
        return {t: self.model(b, task=t) for t, b in batches.items()}


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None
    train_seconds: float = 0.0
    examples: dict[str, int] = field(default_factory=dict)  # training examples seen per task


class Trainer:
    """Runs ``epochs`` passes of the main task's sampler, interleaving the other tasks as
    ``schedule`` says, and keeps the model state that is best on ``validate()[monitor]``.

    Args:
        model: the model; losses come from ``model(batch, task=...)``.
        samplers: one sampler per task; the first task of ``model.tasks`` defines an epoch.
        optimizers: one optimiser per task (tasks may have their own learning rates), or
            ``{"joint": optimiser}`` with ``joint=True``.
        schedule: ``[(task, steps), ...]`` repeated within an epoch.
        validate: returns validation metrics of the current model.
        monitor: the key of ``validate()`` used for model selection and early stopping.
        eval_every: validate after every ``eval_every``-th epoch (and the last); patience
            counts validations.
        checkpoint: file written after every epoch (``None``: no checkpoints).
        joint: each step draws one batch of every task and minimises the sum of
            ``model(batch, task=t)`` with the single optimiser ``optimizers["joint"]``, so the
            weights the model applies to its task losses act (with separate Adam optimisers a
            constant factor on a task's loss does not change its updates).
        kge_interval: epoch-level schedule instead of ``schedule`` (MKR authors' code): a whole
            pass of the main task, then, after epochs ``0, t, 2t, ...``, one whole pass of
            every other task.
        max_examples: ``{task: n}``; training stops after the step at which a task has seen
            ``n`` examples (the last batch is not cut; the counts record what was seen).

    Examples seen per task (rows of the batches: rec pairs, KG triples) are counted in
    ``state.examples`` and, cumulatively, in each history row as ``examples_TASK``.
        on_epoch: called after every epoch (and its checkpoint) with the epoch's history row,
            the whole history and whether the epoch is the new validation best.
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
        joint: bool = False,
        kge_interval: int | None = None,
        max_examples: dict[str, int] | None = None,
        on_epoch: Callable[[dict, list[dict], bool], None] | None = None,
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
        self.on_epoch = on_epoch
        self.state = TrainState()
        self.extra_state = extra_state or {}
        self.main_task = model.tasks[0]
        self.joint, self.kge_interval = joint, kge_interval
        self.max_examples = dict(max_examples or {})
        for task in self.max_examples:
            if task not in model.tasks:
                raise ConfigError(f"train.max_examples names task {task!r}; the model's tasks are "
                                  f"{model.tasks}")
        if joint and set(optimizers) != {"joint"}:
            raise ValueError("joint training takes one optimiser, {'joint': optimiser}")
        self.device = model_device(model)  # batches are moved there before each step
        #: test hook: stop (as if killed) after this many epochs
        self.stop_after: int | None = None
        #: hook called with the task after every optimiser step (tests)
        self.on_step: Callable[[str], None] | None = None
        #: called with ``(epoch, metrics)`` after every validation (pruning of a search);
        #: an exception it raises ends training after that epoch's checkpoint
        self.on_validate: Callable[[int, dict[str, float]], None] | None = None
        self.rank, self.world = distr.rank(), distr.world_size()
        self._ddp: torch.nn.Module | None = None

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
            "examples": self.state.examples,
            **self.extra_state,
        }

    def resume(self, path: str | Path) -> None:
        """Continue from checkpoint ``path``; a checkpoint with missing keys or tensors that
        do not fit this model raises :class:`KGRecError` naming the file."""
        required = ("model", "optimizers", "stopper", "epoch", "history", "best_state",
                    "train_seconds")
        # distributed: rank 0 reads the file, every rank gets its content
        ckpt = distr.broadcast_object(load_checkpoint(path, required=required)
                                      if distr.is_main() else None)
        try:
            self.model.load_state_dict(ckpt["model"])
            for k, o in self.optimizers.items():
                o.load_state_dict(ckpt["optimizers"][k])
            self.stopper.load_state_dict(ckpt["stopper"])
            self.state = TrainState(epoch=int(ckpt["epoch"]), history=list(ckpt["history"]),
                                    best_state=ckpt["best_state"],
                                    train_seconds=float(ckpt["train_seconds"]),
                                    examples=dict(ckpt.get("examples", {})))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise KGRecError(f"{path}: checkpoint does not fit this run's model and "
                             f"optimisers: {_first_line(e)}") from None

    # ---- loop -------------------------------------------------------------------------
    def _aux_batches(self, task: str, epoch: int, salt: int) -> Iterator[dict]:
        k = 0
        while True:
            yield from self.samplers[task].epoch(_epoch_seed(self.seed, epoch, salt + 31 * k))
            k += 1

    def _to_device(self, batch: dict) -> dict:
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def _count(self, task: str, batch: dict) -> None:
        count = getattr(self.samplers.get(task), "examples", None)
        n = count(batch) if count is not None else \
            len(next(v for v in batch.values() if torch.is_tensor(v)))
        self.state.examples[task] = self.state.examples.get(task, 0) + n

    def budget_spent(self) -> bool:
        """Whether a task has seen its ``max_examples``."""
        return any(self.state.examples.get(t, 0) >= n for t, n in self.max_examples.items())

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the main task's data; returns the mean loss per task."""
        torch.manual_seed(_epoch_seed(self.seed, epoch, 1))
        self.model.train()
        hook = getattr(self.model, "on_epoch_start", None)
        if hook is not None:  # e.g. KGAT recomputes its attention once per epoch
            hook(epoch)
        iters = {self.main_task: self.samplers[self.main_task].epoch(_epoch_seed(self.seed, epoch))}
        aux = [t for t in self.model.tasks[1:] if t in self.samplers]
        for k, task in enumerate(self.model.tasks[1:], start=2):
            if task in self.samplers:
                iters[task] = self._aux_batches(task, epoch, k)
        sums = dict.fromkeys(iters, 0.0)
        counts = dict.fromkeys(iters, 0)
        if self.joint:
            opt = self.optimizers["joint"]
            for main_batch in iters[self.main_task]:
                batches = {self.main_task: main_batch, **{t: next(iters[t]) for t in aux}}
                opt.zero_grad(set_to_none=True)
                losses = self._losses(batches)
                sum(losses.values()).backward()
                opt.step()
                for t, b in batches.items():
                    # distributed: loss / world summed over ranks is the global batch's loss
                    sums[t] += losses[t].detach() / self.world  # no per-step device sync
                    counts[t] += 1
                    self._count(t, b)
                if self.on_step is not None:
                    self.on_step("joint")
                if self.budget_spent():
                    break
        else:
            if self.kge_interval is None:
                order = task_cycle(self.schedule, self.model.tasks)
            else:  # MKR authors' loop: whole main pass, then whole passes of the others
                passes = [self.main_task] * len(self.samplers[self.main_task])
                if epoch % self.kge_interval == 0:
                    for k, task in enumerate(aux, start=2):
                        iters[task] = self.samplers[task].epoch(_epoch_seed(self.seed, epoch, k))
                        passes += [task] * len(self.samplers[task])
                order = iter(passes)
            for task in order:
                batch = next(iters[task], None)
                if batch is None:  # the main task's pass is over
                    break
                opt = self.optimizers[task]
                opt.zero_grad(set_to_none=True)
                loss = self._losses({task: batch})[task]
                loss.backward()
                opt.step()
                sums[task] += loss.detach() / self.world
                counts[task] += 1
                self._count(task, batch)
                if self.on_step is not None:
                    self.on_step(task)
                if self.budget_spent():
                    break
        names = list(sums)
        totals = distr.all_reduce_sum([float(sums[t]) for t in names])  # one sync per epoch
        return {f"loss_{t}": v / counts[t] for t, v in zip(names, totals, strict=True) if counts[t]}

    def _losses(self, batches: dict[str, dict]) -> dict[str, torch.Tensor]:
        """The loss of each task's batch for one optimiser step: ``model(batch, task=...)``
        in one process; distributed, of this rank's slice of every batch, scaled as
        ``Model.batch_reduction`` says, in one forward of the DDP wrapper (so a joint step
        backpropagates several tasks' losses through one DDP forward)."""
        if self.world == 1:
            return {t: self.model(self._to_device(b), task=t) for t, b in batches.items()}
        self._wrap()
        parts, scales = {}, {}
        for t, b in batches.items():
            part, scales[t] = self._shard(t, b)
            parts[t] = self._to_device(part)
        losses = self._ddp(parts)
        if self.model.batch_reduction == "sum":  # the model applied loss_scale itself
            return losses
        return {t: scales[t] * loss for t, loss in losses.items()}

    def _shard(self, task: str, batch: dict) -> tuple[dict, float]:
        """This rank's slice of the global batch and the scale of its loss (see
        ``Model.batch_reduction``). A rank whose slice is empty trains on the whole batch
        at scale 0, so that every rank joins the step's gradient all-reduce."""
        part, share = self.samplers[task].shard(batch, self.rank, self.world)
        if share == 0:
            part, scale = batch, 0.0
        else:
            scale = float(self.world) if self.model.batch_reduction == "sum" else self.world * share
        if self.model.batch_reduction == "sum":
            part = {**part, "loss_scale": scale}
        else:  # for terms that sum over the batch rows inside a "mean" loss (MKR's lambda_2)
            part = {**part, "batch_share": share if share > 0 else 1.0}
        return part, scale

    def _wrap(self) -> None:
        if self.world > 1 and self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(_TaskLosses(self.model), device_ids=ids,
                                                forward_sync_buffers=False, find_unused_parameters=True)

    def fit(self) -> TrainState:
        self._wrap()
        bar = tqdm(total=self.epochs, initial=self.state.epoch,
                   disable=not self.progress or not distr.is_main(),
                   desc="train", unit="epoch", leave=False)
        try:
            # distributed: rank 0's early-stopping decision is broadcast
            while (self.state.epoch < self.epochs
                   and not distr.broadcast_object(self.stopper.should_stop)
                   and not self.budget_spent()):
                epoch = self.state.epoch
                t0 = time.perf_counter()
                losses = self.train_epoch(epoch)
                self.state.train_seconds += time.perf_counter() - t0
                diverged = [k for k, v in losses.items() if not math.isfinite(v)]
                if diverged:  # the last checkpoint (previous epoch) stays as it was
                    raise KGRecError(f"training diverged at epoch {epoch + 1}: "
                                     f"{', '.join(diverged)} is not finite; lower train.lr")
                due = ((epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs
                       or self.budget_spent())
                metrics = self.validate() if due else {}
                metrics = distr.broadcast_object(metrics)  # rank 0's metrics decide
                value = metrics.get(self.monitor, math.nan)
                improved = due and self.stopper.update(value, epoch)
                if improved:
                    self.state.best_state = copy.deepcopy(self.model.state_dict())
                self.state.epoch = epoch + 1
                seen = {f"examples_{t}": n for t, n in self.state.examples.items()}
                self.state.history.append({"epoch": epoch, **losses, **seen,
                                           **{f"valid_{k}": v for k, v in metrics.items()},
                                           "seconds": round(time.perf_counter() - t0, 3)})
                if self.checkpoint is not None and distr.is_main():
                    save_checkpoint(self.checkpoint, self.state_dict())
                if self.on_epoch is not None:
                    self.on_epoch(self.state.history[-1], self.state.history, improved)
                bar.update(1)
                if due and self.on_validate is not None:
                    self.on_validate(epoch, metrics)
                bar.set_postfix({self.monitor: f"{value:.4f}", **{k: f"{v:.4f}" for k, v in losses.items()}})
                if self.stop_after is not None and self.state.epoch >= self.stop_after:
                    raise KeyboardInterrupt("stopped by test hook")
        finally:
            bar.close()
        if self.state.best_state is not None:
            self.model.load_state_dict(self.state.best_state)
        return self.state
