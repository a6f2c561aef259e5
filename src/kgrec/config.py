"""Typed run configuration, read from YAML presets and ``--set key=value`` overrides.

Validation is complete at load time: unknown keys are rejected in every section, numbers
are range-checked (learning rates finite and > 0, weight decay finite and >= 0, ``eval.ks``
positive, at least one user per evaluation batch and one thread, a seed in ``[0, 2**32)``,
a device torch knows), ``data.ratios`` must leave non-empty validation and test parts, and
``train.monitor`` must name a metric the validation protocols produce. ``--set`` values go
through the same YAML parser (safe loader) and the same validation as a file. What needs
the model (schedule tasks, sampler options, model sizes) is checked when the run starts,
before any training (:mod:`kgrec.training.experiment`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kgrec.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1)]
Ratios = tuple[float, float, float]
DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps(:\d+)?|xpu(:\d+)?")
#: metric names of each validation protocol (top-K names take ``@k`` for k in eval.ks)
CTR_METRICS = ("auc", "acc")
TOPK_METRICS = ("precision", "recall", "f1", "hit", "ndcg")
KG_METRICS = ("hits@1", "hits@3", "hits@10", "mean_rank", "mrr")


def _check_ratios(v: Ratios | None, name: str) -> Ratios | None:
    if v is None:
        return v
    if not all(math.isfinite(x) for x in v) or min(v) < 0 or abs(sum(v) - 1.0) > 1e-6:
        raise ValueError(f"{name} must be three finite non-negative numbers summing to 1")
    return v


class DataConfig(_Strict):
    """Which dataset, in which layout, split how."""

    dataset: str = Field(description="named dataset (lastfm, book, movie, ...) or a folder")
    layout: Literal["auto", "raw", "processed", "ktup", "kgat", "csv", "atomic"] = "auto"
    split: Literal["ratio", "per_user", "given"] = "ratio"
    ratios: Ratios = (0.6, 0.2, 0.2)
    train_ratio: float = Field(1.0, gt=0, le=1, description="fraction of train kept (MKR Table 3)")
    kg_ratio: float = Field(1.0, gt=0, le=1, description="fraction of KG triples kept, drawn at "
                            "random with the run's seed (MKR Figure 5a)")
    kg_split: Ratios | None = Field(
        None, description="split KG triples train/valid/test for KG completion")
    negatives: Literal["keep", "drop"] = "keep"
    min_user_positives: int = Field(
        0, ge=0, description="drop users with fewer positives before splitting (KTUP's filtering)")
    rating_threshold: float | None = Field(
        None, description="csv/atomic layouts: a rating at or above it is a positive, below it "
                          "is dropped (default: every rated row is a positive)")

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v):
        _check_ratios(v, "ratios")
        if v[1] <= 0 or v[2] <= 0:
            raise ValueError("ratios must leave a non-empty validation part (model selection) "
                             "and test part, e.g. [0.6, 0.2, 0.2]")
        return v

    @field_validator("kg_split")
    @classmethod
    def _kg_split(cls, v):
        _check_ratios(v, "kg_split")
        if v is not None and (v[1] <= 0 or v[2] <= 0):
            raise ValueError("kg_split must leave non-empty validation and test parts")
        return v


class TrainConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: PositiveInt | dict[str, PositiveInt] = 256
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    lr: PositiveFloat | dict[str, PositiveFloat] = 1e-3
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    schedule: list[tuple[str, Annotated[int, Field(ge=0)]]] | None = Field(
        None, description="[[task, steps], ...] repeated within an epoch; default one step each")
    monitor: str = "valid.auc"
    patience: int = Field(5, ge=0, description="validations without improvement before stopping")
    eval_every: int = Field(1, ge=1, description="validate every N epochs (and after the last)")
    threads: int | None = Field(None, ge=1, description="intra-op threads (default 1)")
    device: str = Field("cpu", description="torch device of training and evaluation, e.g. cuda")
    tensorboard: bool = Field(False, description="also write TensorBoard scalars to OUT/tensorboard "
                              "(needs the tensorboard package)")
    sampler_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    joint: bool = Field(
        False, description="one optimiser over all parameters; each step sums one batch of every "
        "task (the model's loss weights act); false: each task steps its own optimiser")
    kge_interval: int | None = Field(
        None, ge=1, description="epoch-level schedule (MKR authors' code): a whole pass of the main "
        "task, then a whole pass of every other task after every N-th epoch; replaces schedule")
    max_examples: dict[str, int] | None = Field(
        None, description="budget: stop once a task has seen this many training examples")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not DEVICE.fullmatch(v):
            raise ValueError(f"unsupported device {v!r}; use cpu, cuda, cuda:N or mps")
        return v

    @field_validator("monitor")
    @classmethod
    def _monitor(cls, v: str) -> str:
        if not v.startswith("valid."):
            raise ValueError(f"must be a validation metric (valid.*), got {v!r}")
        return v

    def for_task(self, value, task: str):
        if isinstance(value, dict):
            if task not in value:
                raise ConfigError(f"no value for task {task!r} in {value}")
            return value[task]
        return value


class EvalConfig(_Strict):
    protocols: list[Literal["ctr", "topk", "kg"]] = ["ctr", "topk"]
    ks: list[PositiveInt] = Field([1, 2, 5, 10, 20, 50, 100], min_length=1)
    ndcg: Literal["standard", "legacy", "ktup"] = "standard"
    ndcg_authors: Literal["standard", "legacy", "ktup"] | None = Field(
        None, description="a second NDCG variant reported beside ndcg@K as ndcg_authors@K "
        "(legacy: KGAT's/JNSKR's, ktup: KTUP's)")
    batch_users: int = Field(1024, ge=1)
    exclude_valid: bool = Field(True, description="test top-K also excludes valid positives")
    kg_exclude_query: bool = Field(
        False, description="KG completion: drop the query's own entity from the candidates")
    kg_valid_triples: int | None = Field(
        None, ge=1, description="KG validation on a fixed sample of this many validation triples "
        "(the same for every model and seed; default all)")
    kg_test_triples: int | None = Field(
        None, ge=1, description="KG test on a fixed sample of this many test triples (default all)")


class RunConfig(_Strict):
    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = Field(0, ge=0, lt=2**32)
    init_from: list[str] = Field(
        default_factory=list,
        description="warm start: checkpoints (a run's model.pt) whose tensors that match the "
                    "model's parameters by name and shape initialise it (KTUP Section 6.3)")
    notes: dict[str, str] = Field(default_factory=dict, description="where each value comes from")

    @model_validator(mode="after")
    def _monitor_is_produced(self) -> RunConfig:
        key = self.train.monitor.split(".", 1)[1]
        known = monitor_metrics(self.eval.ks)
        if key not in known:
            hint = ""
            if "@" in key and key.split("@")[0] in TOPK_METRICS:
                hint = f" (add its k to eval.ks {self.eval.ks})"
            raise ValueError(f"train.monitor {self.train.monitor!r} is not a metric the "
                             f"validation produces{hint}; choose valid.auc, valid.acc, "
                             f"valid.{{{','.join(TOPK_METRICS)}}}@K with K in eval.ks, or "
                             f"valid.kg.{{{','.join(KG_METRICS)}}}")
        return self


def monitor_metrics(ks: list[int]) -> set[str]:
    """Every validation metric name ``train.monitor`` may select (without ``valid.``)."""
    return ({*CTR_METRICS} | {f"{m}@{k}" for m in TOPK_METRICS for k in ks}
            | {f"kg.{m}" for m in KG_METRICS})


def _parse_value(text: str, option: str = "") -> Any:
    """YAML scalar/flow value; ``1e-6`` (a string in YAML 1.1) is read as a float."""
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except (yaml.YAMLError, RecursionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--set {option}: not a valid YAML value ({first})") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {key}: not a dotted option name")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = _parse_value(value, key.strip())
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict | None = None) -> RunConfig:
    """Read a YAML preset, apply overrides and validate; errors raise :class:`ConfigError`."""
    if raw is None:
        p = Path(path)  # type: ignore[arg-type]
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the config file: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a UTF-8 text file (a YAML config is expected; "
                              "UTF-16 and binary files are not read)") from None
        if "\x00" in text:
            raise ConfigError(f"{p}: contains NUL bytes; a YAML text file is expected")
        try:
            raw = yaml.safe_load(text) or {}
        except (yaml.YAMLError, RecursionError) as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    raw = apply_overrides(_copy_sections(raw), overrides or [])
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}invalid config: {validation_message(e)}") from None


def _copy_sections(raw: dict) -> dict:
    """A copy of ``raw`` whose nested sections can be overridden without touching it."""
    return {k: _copy_sections(v) if isinstance(v, dict) else v for k, v in raw.items()}


def validation_message(e: ValidationError) -> str:
    """Pydantic's errors as ``option: what`` (union branch names left out)."""
    items: list[tuple[str, str]] = []
    for x in e.errors():
        loc = [str(p) for p in x["loc"] if not re.fullmatch(
            r"float|int|str|constrained-\w+|(dict|list|tuple|function-after)\[.*\]", str(p))]
        items.append((".".join(loc), x["msg"].removeprefix("Value error, ")))
    generic = ("Input should be a valid dictionary", "Input should be a valid number")
    out = []
    for opt, msg in items:
        # a union (number or per-task dict): keep the branch that says what is wrong
        others = [m for o, m in items if (o == opt or o.startswith(opt + ".")) and (o, m) != (opt, msg)]
        if msg.startswith(generic) and any(not m.startswith(generic) for m in others):
            continue
        item = f"{opt}: {msg}" if opt else msg
        if item not in out:
            out.append(item)
    return "; ".join(out)
