"""Training: the loop, task schedules, early stopping, checkpoints, experiments."""

from kgrec.training.checkpoint import load_checkpoint, save_checkpoint
from kgrec.training.stopping import EarlyStopper
from kgrec.training.trainer import Trainer

__all__ = ["EarlyStopper", "Trainer", "load_checkpoint", "save_checkpoint"]
