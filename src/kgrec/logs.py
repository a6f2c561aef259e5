"""Run logs: the ``kgrec`` logger, progress of long loops, per-epoch lines and CSV.

Library code never prints; it logs to the ``kgrec`` logger. The command line sends that
logger to stderr when stderr is not a terminal (a redirect, nohup, a cluster job log; on a
terminal tqdm bars show progress instead), and every training run appends it to
``OUT/train.log``. Each epoch gives one line (epoch, each task's mean loss, the validation
metrics when validated, seconds) and one row of ``OUT/history.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kgrec.errors import ConfigError

logger = logging.getLogger("kgrec")
FORMAT = "%(asctime)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
T = TypeVar("T")


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def log_to_stderr(enabled: bool = True) -> logging.Handler | None:
    """Send the ``kgrec`` logger's INFO lines to stderr (the command line does this when
    stderr is not a terminal). Each line is flushed as it is written."""
    for h in list(logger.handlers):
        if getattr(h, "_kgrec_stderr", False):
            logger.removeHandler(h)
    if not enabled:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    handler._kgrec_stderr = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Append the ``kgrec`` logger's INFO lines to ``path`` while the block runs; an
    exception leaving the block is logged as the run's last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    handler.setLevel(logging.INFO)
    old_level = logger.level
    if old_level == logging.NOTSET or old_level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    except KeyboardInterrupt:
        logger.info("run interrupted")
        raise
    except Exception as e:
        logger.info(f"run stopped: {type(e).__name__}: {e}")
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(old_level)


class Progress:
    """Progress of a long loop over ``total`` units: a tqdm bar on a terminal (shown after
    ``delay`` seconds), otherwise a log line ``DESC: done/total (pct) in Xs`` at most every
    ``every`` seconds, and a last line if any was written. Short loops stay silent."""

    def __init__(self, total: int, desc: str, unit: str = "it", every: float = 10.0,
                 delay: float = 2.0, enabled: bool = True) -> None:
        self.total, self.desc, self.unit, self.every = int(total), desc, unit, every
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.logged = False
        self.enabled = enabled
        self.bar = None
        if enabled and stderr_is_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, delay=delay)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and now - self.last >= self.every and self.done < self.total:
            self.last = now
            self.logged = True
            logger.info(self._line(now))

    def _line(self, now: float) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%) "
                f"in {now - self.start:.1f}s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.logged:
            logger.info(self._line(time.perf_counter()))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(items: Iterable[T], total: int, desc: str, unit: str = "it", **kw: Any) -> Iterator[T]:
    """Iterate ``items`` reporting :class:`Progress` one unit per item."""
    with Progress(total, desc, unit, **kw) as p:
        for x in items:
            yield x
            p.update()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def epoch_line(row: dict[str, Any], epochs: int, best: bool = False) -> str:
    """``epoch E/N loss_TASK=... valid_METRIC=... [best] S.SSs`` of a history row (the row's
    ``epoch`` is 0-based, the line's 1-based)."""
    parts = [f"epoch {row['epoch'] + 1}/{epochs}"]
    parts += [f"{k}={_fmt(v)}" for k, v in row.items() if k.startswith(("loss_", "valid_"))]
    if best:
        parts.append("(best)")
    if "seconds" in row:
        parts.append(f"{row['seconds']:.2f}s")
    return " ".join(parts)


def history_csv(history: list[dict[str, Any]]) -> bytes:
    """The per-epoch history as CSV: ``epoch`` (1-based), each task's loss, the validation
    metrics (empty in epochs without validation), the training examples seen so far per task
    and ``seconds``."""
    fields: dict[str, None] = {"epoch": None}
    for row in history:
        fields.update((k, None) for k in row if k.startswith("loss_"))
    for row in history:
        fields.update((k, None) for k in row if k.startswith("valid_"))
    for row in history:
        fields.update((k, None) for k in row if k.startswith("examples_"))
    fields["seconds"] = None
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({**row, "epoch": row["epoch"] + 1})
    return buf.getvalue().encode()


def tensorboard_writer(log_dir: Path):
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir`` (``train.tensorboard``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError("train.tensorboard is true but TensorBoard is not importable "
                          f"({e}); `pip install tensorboard` or set train.tensorboard=false") from None
    return SummaryWriter(log_dir=str(log_dir))


class EpochWriter:
    """The trainer's per-epoch callback: one log line, ``history.csv`` rewritten atomically,
    and TensorBoard scalars (``loss/TASK``, ``valid/METRIC``) when a writer is given."""

    def __init__(self, out: Path, epochs: int, monitor: str, tensorboard=None) -> None:
        self.out, self.epochs, self.monitor = Path(out), epochs, f"valid_{monitor}"
        self.tensorboard = tensorboard

    def __call__(self, row: dict[str, Any], history: list[dict[str, Any]], best: bool) -> None:
        from kgrec.data.registry import atomic_write_bytes

        logger.info(epoch_line(row, self.epochs, best))
        atomic_write_bytes(self.out / "history.csv", history_csv(history))
        if self.tensorboard is not None:
            step = row["epoch"] + 1
            for k, v in row.items():
                if k.startswith("loss_"):
                    self.tensorboard.add_scalar(f"loss/{k[5:]}", v, step)
                elif k.startswith("valid_"):
                    self.tensorboard.add_scalar(f"valid/{k[6:]}", v, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


#: headline metrics of each protocol in the summary line
HEADLINE_TOPK = ("precision@10", "recall@10", "ndcg@10", "hit@10")
HEADLINE_KG = ("hits@10", "mrr", "mean_rank")


def summary_line(metrics: dict[str, Any], out: Path | None = None) -> str:
    """One line with every protocol's headline test metrics: CTR AUC/ACC, top-K
    precision/recall/NDCG/hit @10 (where K=10 was evaluated), filtered KG Hits@10/MRR/mean
    rank (where KG completion was evaluated), then epochs and training time."""
    parts = [f"{k}={_fmt(v)}" for k, v in metrics.get("test", {}).items()]
    topk = metrics.get("topk", {})
    parts += [f"{k}={_fmt(topk[k])}" for k in HEADLINE_TOPK if k in topk]
    kg = metrics.get("kg", {}).get("filtered", {})
    parts += [f"kg.{k}={_fmt(kg[k])}" for k in HEADLINE_KG if k in kg]
    line = (f"{metrics['model']} on {metrics['dataset']} (seed {metrics['seed']}): test "
            + (" ".join(parts) or "-")
            + f" | epochs {metrics['epochs']} (best {metrics['best_epoch']}), "
            f"{metrics['train_seconds']:.1f}s training")
    return line + (f" -> {out / 'metrics.json'}" if out is not None else "")
