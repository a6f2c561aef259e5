"""One experiment from a :class:`~kgrec.config.RunConfig`: data, split, model, training,
validation-selected model, a single final test evaluation, and the run folder.

Run folder contents: ``config.yaml`` (resolved config), ``checkpoint.pt`` (last epoch,
for resuming), ``model.pt`` (validation-best state dict + config), ``metrics.json``,
``train.log`` (the run's log lines, appended) and ``history.csv`` (one row per epoch).

Before any training the run checks what the config alone cannot: the schedule gives the
main task a step, sampler options name the model's tasks and their samplers' parameters,
dimension-like model arguments are positive, the model's parameters (with gradients and
optimiser state) fit in the memory of the device, and the split leaves non-empty
validation and test parts. The folder is locked for the run
(:class:`~kgrec.training.runfolder.RunLock`); checkpoints and ``model.pt`` record the
data fingerprint (:func:`~kgrec.training.runfolder.data_fingerprint`), and resuming or
loading them against other data is an error. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import ValidationError

from kgrec.config import RunConfig, validation_message
from kgrec.data import load_dataset, make_split
from kgrec.data.dataset import KGDataset, Split
from kgrec.data.readers.kgat import reseed_validation
from kgrec.data.registry import atomic_write_bytes, ensure_dir
from kgrec.data.samplers import make_sampler
from kgrec.data.splits import split_triples, subsample_triples
from kgrec.errors import ConfigError, KGRecError
from kgrec.evaluation import evaluate_ctr, evaluate_kg, evaluate_topk
from kgrec.logs import EpochWriter, logger, run_log, summary_line, tensorboard_writer
from kgrec.models import get_model_class
from kgrec.models.base import Model
from kgrec.training import distributed as distr
from kgrec.training.checkpoint import load_checkpoint, save_checkpoint
from kgrec.training.runfolder import RunLock, data_fingerprint
from kgrec.training.schedule import check_schedule as check_task_schedule
from kgrec.training.schedule import default_schedule
from kgrec.training.trainer import Trainer

OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``name``, fused where PyTorch has a fused kernel (4x faster steps on
    the dense embedding tables here, same arithmetic)."""
    cls = OPTIMIZERS[name]
    params = list(params)
    if name == "adagrad" and any(p.device.type != "cpu" for p in params):
        return cls(params, lr=lr, weight_decay=weight_decay)  # fused Adagrad is CPU-only
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=lr, weight_decay=weight_decay)


class LossWeightWarning(UserWarning):
    """A model's loss weight between tasks that cannot change training as configured."""


def make_optimizers(cfg: RunConfig, model: Model) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per task over all parameters, or ``{"joint": one}`` with ``train.joint``.

    Without ``train.joint``, a model's constant weight on a task's whole loss
    (:meth:`Model.task_weights`) does not change Adam's or Adagrad's updates (both are
    invariant to the scale of the gradient): such a weight is reported with a
    :class:`LossWeightWarning`.
    """
    tc, params = cfg.train, list(model.parameters())
    if tc.joint:
        lrs = {tc.for_task(tc.lr, t) for t in model.tasks}
        if len(lrs) > 1:
            raise ConfigError(f"train.joint uses one optimiser, so one learning rate; train.lr is {tc.lr}")
        return {"joint": make_optimizer(tc.optimizer, params, lrs.pop(), tc.weight_decay)}
    weights = {t: model.task_weights().get(t, 1.0) for t in model.tasks}
    if len(set(weights.values())) > 1 and tc.optimizer in ("adam", "adagrad"):
        warnings.warn(
            f"{cfg.model}: the task loss weights {weights} cannot act with a separate {tc.optimizer} "
            "optimiser per task (its updates ignore a constant factor on the loss); set "
            "train.joint: true for one optimiser over the weighted sum", LossWeightWarning, stacklevel=2)
    return {t: make_optimizer(tc.optimizer, params, tc.for_task(tc.lr, t), tc.weight_decay)
            for t in model.tasks}


def check_schedule(cfg: RunConfig, model: Model) -> list[tuple[str, int]]:
    """The step schedule, refusing combinations in which an option would not act."""
    tc = cfg.train
    if tc.kge_interval is not None and (tc.schedule is not None or tc.joint):
        raise ConfigError("train.kge_interval (whole passes per task) replaces train.schedule and "
                          "train.joint; set train.schedule=null and train.joint=false")
    if tc.joint and tc.schedule is not None and any(n != 1 for _, n in tc.schedule):
        raise ConfigError(f"train.joint sums one batch of every task per step; train.schedule "
                          f"{tc.schedule} cannot apply (set train.schedule=null)")
    schedule = tc.schedule or default_schedule(model.tasks)
    if tc.kge_interval is None:
        check_task_schedule(schedule, tuple(model.tasks))
    shares = model.step_shares()
    if shares:
        total = sum(n for _, n in schedule)
        given = {t: sum(n for task, n in schedule if task == t) / total for t in shares}
        if tc.joint or tc.kge_interval is not None or any(
                abs(given[t] - w) > 1e-6 for t, w in shares.items()):
            warnings.warn(
                f"{cfg.model}: the model reads its loss weight as shares of steps {shares}, but the "
                f"training gives {'joint steps' if tc.joint else given}; set train.schedule to "
                "those shares (e.g. [[rec, 7], [kg, 3]] for 0.7)", LossWeightWarning, stacklevel=2)
    return schedule


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (default 1). The models' steps are small tensor ops, where
    more threads mostly add synchronisation; on a busy machine OpenMP threads that wait for
    a core made an MKR epoch 100x slower (24 s instead of 0.2 s)."""
    torch.set_num_threads(n or 1)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"train.device: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but torch sees no CUDA device")
    return device


def prepare_data(cfg: RunConfig, data_dir: str | Path | None = None) -> tuple[KGDataset, Split]:
    dataset = load_dataset(cfg.data.dataset, cfg.data.layout, data_dir,
                           rating_threshold=cfg.data.rating_threshold)
    if dataset.meta.get("layout") == "kgat":
        dataset = reseed_validation(dataset, cfg.seed)
    if cfg.data.kg_ratio < 1:  # MKR Figure 5a: a random share of the KG, the run's seed
        if dataset.kg_split is not None:
            raise ConfigError(f"data.kg_ratio: dataset {dataset.name!r} ships its own KG split, "
                              "which data.kg_ratio would not change; use it on a whole KG")
        dataset = dataclasses.replace(dataset, triples=subsample_triples(
            dataset.triples, cfg.data.kg_ratio, cfg.seed))
    split = make_split(dataset, cfg.data.split, cfg.data.ratios, cfg.seed, cfg.data.train_ratio,
                       cfg.data.negatives, cfg.data.min_user_positives)
    if cfg.data.kg_split is not None and dataset.kg_split is None:
        dataset.kg_split = split_triples(dataset.triples, cfg.data.kg_split, cfg.seed)
    return dataset, split


#: model arguments that size a tensor and must be positive integers
SIZE_ARGS = re.compile(r"dim|\w+_dim|n_preferences|chunk_elems|batch_size")
#: bytes per parameter in training: float32 weights, gradients and two Adam moments
BYTES_PER_PARAM = 16


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes of memory a run may use on ``device`` (CPU: ``MemAvailable``)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_parameters(cfg: RunConfig, dataset: KGDataset, split: Split,
                        probe: bool = True) -> int:
    """Number of model parameters (and buffers) ``cfg`` asks for, without allocating them:
    the model is built on PyTorch's ``meta`` device; models whose constructor needs real
    values, and every model with ``probe=False``, get an upper estimate from the id counts
    and the largest size argument (``ids x dim + relations x dim^2``). (The meta build
    imports ``torch._dynamo``, 1-3 s, which training imports anyway but serving does not.)"""
    cls = get_model_class(cfg.model)
    if probe:
        try:
            with torch.device("meta"):
                model = cls.build(dataset, split, **cfg.model_args)
            return (sum(p.numel() for p in model.parameters())
                    + sum(b.numel() for b in model.buffers()))
        except KGRecError:
            raise
        except Exception:  # noqa: BLE001, S110 - the constructor needs real tensors: estimate
            pass
    dims = [int(v) for k, v in cfg.model_args.items()
            if SIZE_ARGS.fullmatch(k) and isinstance(v, int) and k.endswith("dim")]
    d = max(dims, default=100)
    ids = dataset.n_users + dataset.n_items + dataset.n_entities + dataset.n_relations
    return ids * d + (dataset.n_relations + 8) * d * d


def check_model_args(cfg: RunConfig, dataset: KGDataset, split: Split,
                     device: torch.device | str = "cpu", probe: bool = True) -> None:
    """Size-like ``model_args`` must be positive integers, and the model must fit in the
    device's memory (see :data:`BYTES_PER_PARAM`); else :class:`ConfigError`, before any
    allocation."""
    for k, v in cfg.model_args.items():
        if SIZE_ARGS.fullmatch(k) and v is not None and (
                isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"model_args.{k} must be a positive integer, got {v!r}")
    n = estimate_parameters(cfg, dataset, split, probe)
    need, have = n * BYTES_PER_PARAM, available_memory(device)
    if need > have:
        raise ConfigError(f"model_args {cfg.model_args} ask for {n:,} parameters of "
                          f"{cfg.model!r} on this data ({need / 2**30:,.1f} GiB with gradients "
                          f"and optimiser state), more than the {have / 2**30:,.1f} GiB "
                          f"available on {torch.device(device)}")


def build_model(cfg: RunConfig, dataset: KGDataset, split: Split,
                device: torch.device | str = "cpu", probe: bool = True) -> Model:
    cls = get_model_class(cfg.model)
    check_model_args(cfg, dataset, split, device, probe)
    try:
        return cls.build(dataset, split, **cfg.model_args)
    except TypeError as e:
        raise ConfigError(f"model_args for {cfg.model!r}: {e}") from None
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"model_args for {cfg.model!r}: cannot build the model: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else e!r}") from None


def evaluate(model: Model, dataset: KGDataset, split: Split, cfg: RunConfig, stage: str,
             protocols: list[str] | None = None) -> dict[str, Any]:
    """Metrics of ``stage`` ("valid" or "test") under the config's protocols, flat."""
    out: dict[str, Any] = {}
    protocols = protocols if protocols is not None else cfg.eval.protocols
    rows = split.valid if stage == "valid" else split.test
    if "ctr" in protocols:
        out.update(evaluate_ctr(model, rows))
    if "topk" in protocols:
        out.update(evaluate_topk(model, split, stage, cfg.eval.ks, cfg.eval.ndcg,
                                 cfg.eval.batch_users, dataset.n_users, dataset.n_items,
                                 cfg.eval.exclude_valid, ndcg_authors=cfg.eval.ndcg_authors))
    if "kg" in protocols and stage == "valid":  # the test KG protocol runs once, in run()
        kg = evaluate_kg(model, _kg_part(dataset, "valid", cfg.eval.kg_valid_triples),
                         _kg_known(dataset),
                         exclude_query=cfg.eval.kg_exclude_query, desc="KG completion (valid)")
        out.update({f"kg.{k}": v for k, v in kg["filtered"].items()})
    return out


def _kg_part(dataset: KGDataset, part: str, limit: int | None = None) -> np.ndarray:
    """The KG triples of ``part``; with ``limit``, a fixed sample of that many (drawn with
    seed 0 whatever the run's seed, so every model and seed ranks the same triples)."""
    if not dataset.kg_split:
        raise ConfigError("the kg protocol needs data.kg_split or a dataset with a KG split")
    triples = dataset.kg_split[part]
    if limit is not None and limit < len(triples):
        keep = np.random.default_rng(0).choice(len(triples), limit, replace=False)
        triples = triples[np.sort(keep)]
    return triples


def _kg_known(dataset: KGDataset) -> np.ndarray:
    return np.concatenate([dataset.kg_split[k] for k in ("train", "valid", "test")])


def _protocols_for(monitor: str) -> list[str]:
    key = monitor.split(".", 1)[-1]
    if key.startswith("kg."):
        return ["kg"]
    return ["ctr"] if key in ("auc", "acc") else ["topk"] if "@" in key else ["ctr", "topk"]


def _normalised(saved: Any) -> Any:
    """A saved config dict with the defaults of options added since it was written."""
    try:
        return RunConfig.model_validate(saved).model_dump(mode="json")
    except ValidationError:  # not a valid config: compare as it is
        return saved


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def check_tasks(cfg: RunConfig) -> None:
    """Schedule and sampler options against the model's tasks (before any data is read)."""
    tasks = tuple(get_model_class(cfg.model).tasks)
    if cfg.train.schedule is not None:
        check_task_schedule(cfg.train.schedule, tasks)
    for task in cfg.train.sampler_options:
        if task not in tasks:
            raise ConfigError(f"train.sampler_options.{task}: {cfg.model!r} has no task {task!r} "
                              f"(its tasks: {', '.join(tasks)})")


def check_parts(cfg: RunConfig, split: Split, evaluate_test: bool = True,
                n_users: int | None = None) -> None:
    """The split must leave rows to validate on (and to test on, when testing), and the
    top-K rankings (``max(eval.ks)`` slots for each of ``n_users`` users, with their hit
    arrays: 32 bytes a slot) must fit in memory."""
    monitor = cfg.train.monitor
    topk = "topk" in cfg.eval.protocols or ("@" in monitor and not monitor.startswith("valid.kg."))
    if n_users is not None and topk:
        need, have = 32 * n_users * max(cfg.eval.ks), available_memory()
        if need > have:
            raise ConfigError(f"eval.ks: k = {max(cfg.eval.ks):,} for {n_users:,} users needs "
                              f"{need / 2**30:,.1f} GiB for the rankings, more than the "
                              f"{have / 2**30:,.1f} GiB available")
    if not {"ctr", "topk"} & set(cfg.eval.protocols) and cfg.train.monitor.startswith("valid.kg."):
        return
    parts = [("validation", split.valid)] + ([("test", split.test)] if evaluate_test else [])
    ctr = "ctr" in cfg.eval.protocols or monitor in ("valid.auc", "valid.acc")
    for name, rows in parts:
        if not len(rows) or not (rows[:, 2] == 1).any():
            raise ConfigError(f"data.ratios {list(cfg.data.ratios)} / data.split {cfg.data.split!r} "
                              f"leave no positive {name} row on this data; metrics would be NaN")
        if ctr and not (rows[:, 2] == 0).any():
            raise ConfigError(f"eval.protocols: the ctr protocol (AUC) needs negative {name} rows "
                              f"and this data has none (data.negatives is {cfg.data.negatives!r}); "
                              "drop ctr or keep the negatives")


def check_protocols(cfg: RunConfig, model: Model) -> None:
    """The model must be able to score what the protocols evaluate."""
    kg = "kg" in cfg.eval.protocols or cfg.train.monitor.startswith("valid.kg.")
    if kg and not (hasattr(model, "score_tails") and hasattr(model, "score_heads")):
        raise ConfigError(f"eval.protocols / train.monitor: {cfg.model!r} does not score KG "
                          "triples, so the kg protocol cannot evaluate it")


def _protocol_of(key: str) -> str:
    return "kg" if key.startswith("kg.") else "topk" if "@" in key else "ctr"


def _best_validation(trainer: Trainer) -> dict[str, Any]:
    """The validation metrics recorded for the validation-best epoch (empty if none)."""
    if trainer.state.best_state is None:
        return {}
    row = next((h for h in trainer.state.history if h["epoch"] == trainer.stopper.best_epoch), {})
    return {k[len("valid_"):]: v for k, v in row.items() if k.startswith("valid_")}


def _with_run_log(fn):
    """Append the run's log lines to ``OUT_DIR/train.log`` while ``fn(cfg, out_dir, ...)``
    runs."""
    @functools.wraps(fn)
    def wrapper(cfg: RunConfig, out_dir: str | Path, *args, **kwargs):
        if distr.env_rank() != 0:  # torchrun: rank 0 logs and writes the run folder
            with distr.silenced(logger):
                return fn(cfg, out_dir, *args, **kwargs)
        with run_log(Path(out_dir) / "train.log"):
            return fn(cfg, out_dir, *args, **kwargs)
    return wrapper


def run(cfg: RunConfig, out_dir: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says; write the run folder; return the metrics.

    ``evaluate_test=False`` (hyper-parameter search) never reads the test split.
    ``on_validate(epoch, metrics)`` is called after every validation (see ``Trainer``).

    With ``resume`` and a ``checkpoint.pt`` from the same config and data in ``out_dir``,
    training continues after its last completed epoch. The folder is locked for the run;
    a second run into it fails at once (:class:`~kgrec.errors.OutputError`). Arguments as
    :func:`run_unlocked`.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this; it joins the process
    group (and leaves it at the end if it created it), trains data-parallel and evaluates
    sharded (see :mod:`kgrec.training.trainer`); rank 0 holds the lock, logs and writes the
    run folder.
    """
    get_model_class(cfg.model)  # fail on an unknown model before any work
    check_tasks(cfg)
    if distr.env_rank() != 0:
        return run_unlocked(cfg, out_dir, *args, **kwargs)
    out = ensure_dir(out_dir)
    with RunLock(out):
        return run_unlocked(cfg, out, *args, **kwargs)


@_with_run_log
def run_unlocked(cfg: RunConfig, out_dir: str | Path, data_dir: str | Path | None = None,
                 resume: bool = True, progress: bool | None = None,
                 stop_after: int | None = None, evaluate_test: bool = True,
                 on_validate: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """:func:`run` without taking the folder's lock (the caller holds it)."""
    get_model_class(cfg.model)  # fail on an unknown model before any work
    check_tasks(cfg)
    device, created = distr.init_from_env(_device(cfg.train.device))
    try:
        return _run(cfg, out_dir, device, data_dir, resume, progress, stop_after, evaluate_test,
                    on_validate)
    finally:
        if created:
            distr.shutdown()


def _run(cfg: RunConfig, out_dir: str | Path, device: torch.device, data_dir: str | Path | None,
         resume: bool, progress: bool | None, stop_after: int | None, evaluate_test: bool,
         on_validate: Callable | None) -> dict[str, Any]:
    main = distr.is_main()
    out = ensure_dir(out_dir) if main else Path(out_dir)
    set_threads(cfg.train.threads)
    cfg_dict = cfg.model_dump(mode="json")
    ckpt_path = out / "checkpoint.pt"
    prev_fp = None
    has_ckpt = distr.broadcast_object(main and ckpt_path.exists())
    if has_ckpt and resume and main:
        prev_ckpt = load_checkpoint(ckpt_path)
        prev, prev_fp = prev_ckpt.get("config"), prev_ckpt.get("data_fingerprint")
        del prev_ckpt
        if prev != cfg_dict and _normalised(prev) != cfg_dict:
            raise ConfigError(f"{ckpt_path}: written by a different config; use another --out "
                              "or --no-resume")
    if main:
        atomic_write_bytes(out / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False).encode())
    logger.info(f"run {cfg.model} on {cfg.data.dataset} (seed {cfg.seed}, device "
                f"{cfg.train.device}"
                + (f", {distr.world_size()} processes" if distr.world_size() > 1 else "")
                + f") -> {out}")
    board = tensorboard_writer(out / "tensorboard") if cfg.train.tensorboard and main else None

    dataset, split = prepare_data(cfg, data_dir)
    check_parts(cfg, split, evaluate_test, dataset.n_users)
    fingerprint = data_fingerprint(dataset, split)
    if prev_fp is not None and prev_fp != fingerprint:
        raise ConfigError(f"{ckpt_path}: the data changed since this checkpoint was written "
                          "(its data fingerprint differs); use another --out or --no-resume")
    logger.info(f"data {dataset.name}: {dataset.n_users:,} users, {dataset.n_items:,} items, "
                f"{len(dataset.triples):,} triples; split {len(split.train):,} / "
                f"{len(split.valid):,} / {len(split.test):,} interactions")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    model = build_model(cfg, dataset, split, device).to(device)
    for path in cfg.init_from:  # warm start; a resumed checkpoint overrides it below
        model.load_pretrained(path)
    if cfg.init_from:
        model.finish_warm_start()
    check_protocols(cfg, model)
    tasks = model.tasks
    samplers = {}
    for task in tasks:
        opts = {**model.sampler_defaults(task), **cfg.train.sampler_options.get(task, {})}
        bs = cfg.train.for_task(cfg.train.batch_size, task)
        samplers[task] = make_sampler(model.task_samplers[task], dataset, split, bs, **opts)
    optimizers = make_optimizers(cfg, model)
    schedule = check_schedule(cfg, model)
    monitor = cfg.train.monitor
    if not monitor.startswith("valid."):
        raise ConfigError(f"train.monitor must be a validation metric (valid.*), got {monitor!r}")
    key = monitor.split(".", 1)[1]
    protocols = _protocols_for(monitor)

    epoch_writer = EpochWriter(out, cfg.train.epochs, key, board) if main else None
    trainer = Trainer(
        model, samplers, optimizers, schedule,
        validate=lambda: evaluate(model, dataset, split, cfg, "valid", protocols),
        monitor=key, epochs=cfg.train.epochs, patience=cfg.train.patience, seed=cfg.seed,
        eval_every=cfg.train.eval_every, joint=cfg.train.joint,
        kge_interval=cfg.train.kge_interval, max_examples=cfg.train.max_examples,
        checkpoint=ckpt_path, progress=progress,
        extra_state={"config": cfg_dict, "data_fingerprint": fingerprint},
        on_epoch=epoch_writer,
    )
    if resume and has_ckpt:
        trainer.resume(ckpt_path)
    trainer.stop_after = stop_after
    trainer.on_validate = on_validate
    try:
        state = trainer.fit()
    finally:
        if epoch_writer is not None:
            epoch_writer.close()

    # the validation-best model is loaded; its validation metrics were recorded in training
    # (only protocols the monitor did not cover are run now); the test split is used once
    rec_protocols = [p for p in cfg.eval.protocols if p != "kg"]
    recorded = _best_validation(trainer)
    valid: dict[str, Any] = {}
    for p in rec_protocols:
        if p in protocols and recorded:
            valid.update({k: v for k, v in recorded.items() if _protocol_of(k) == p})
        else:
            valid.update(evaluate(model, dataset, split, cfg, "valid", [p]))
    metrics: dict[str, Any] = {
        "model": cfg.model, "dataset": cfg.data.dataset, "seed": cfg.seed, "valid": valid,
    }
    if evaluate_test:
        logger.info(f"best epoch {trainer.stopper.best_epoch + 1}; evaluating the test split")
    test = evaluate(model, dataset, split, cfg, "test", rec_protocols) if evaluate_test else {}
    metrics["test"] = {k: v for k, v in test.items() if "@" not in k}
    if "topk" in cfg.eval.protocols and evaluate_test:
        metrics["topk"] = {k: v for k, v in test.items() if "@" in k}
    if "kg" in cfg.eval.protocols and evaluate_test:
        metrics["kg"] = evaluate_kg(model, _kg_part(dataset, "test", cfg.eval.kg_test_triples),
                                    _kg_known(dataset), categories_from=dataset.kg_split["train"],
                                    exclude_query=cfg.eval.kg_exclude_query,
                                    desc="KG completion (test)")
    if hasattr(model, "kge_rmse"):
        metrics["kge_rmse"] = model.kge_rmse(torch.from_numpy(dataset.triples).to(device))
    metrics.update({
        "epochs": state.epoch,
        "best_epoch": trainer.stopper.best_epoch + 1,
        "train_seconds": round(state.train_seconds, 3),
        "examples": dict(state.examples),
        "history": state.history,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    if hasattr(model, "kge_rmse"):
        metrics["kge_rmse"] = distr.broadcast_object(metrics["kge_rmse"])
    if main:
        save_checkpoint(out / "model.pt", {"model": model.state_dict(), "config": cfg_dict,
                                           "data_fingerprint": fingerprint})
        write_json(out / "metrics.json", metrics)
    distr.barrier()  # the run folder is complete when any rank returns
    logger.info(summary_line(metrics, out))
    return metrics


def load_run(run_dir: str | Path, data_dir: str | Path | None = None):
    """Rebuild ``(model, dataset, split, cfg)`` of a finished run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "model.pt"
    saved = load_checkpoint(path, required=("model", "config"))
    try:
        cfg = RunConfig.model_validate(saved["config"])
    except ValidationError as e:
        raise ConfigError(f"{path}: its config is not valid: {validation_message(e)}") from None
    dataset, split = prepare_data(cfg, data_dir)
    fingerprint = saved.get("data_fingerprint")
    if fingerprint is not None and fingerprint != data_fingerprint(dataset, split):
        raise KGRecError(f"{path}: trained on other data than {cfg.data.dataset!r} gives now "
                         "(its data fingerprint differs)")
    model = build_model(cfg, dataset, split, probe=False)  # no meta build: faster serve start
    try:
        model.load_state_dict(saved["model"])
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as e:
        text = str(e).strip().splitlines()
        raise KGRecError(f"{path}: the saved model does not match its config and the data: "
                         f"{text[0][:300] if text else type(e).__name__}") from None
    model.eval()
    return model, dataset, split, cfg
