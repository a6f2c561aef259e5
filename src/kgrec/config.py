"""Typed run configuration, read from YAML presets and ``--set key=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kgrec.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Which dataset, in which layout, split how."""

    dataset: str = Field(description="named dataset (lastfm, book, movie, ...) or a folder")
    layout: Literal["auto", "raw", "processed", "ktup", "kgat", "csv", "atomic"] = "auto"
    split: Literal["ratio", "per_user", "given"] = "ratio"
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    train_ratio: float = Field(1.0, gt=0, le=1, description="fraction of train kept (MKR Table 3)")
    kg_split: tuple[float, float, float] | None = Field(
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
        if abs(sum(v) - 1.0) > 1e-6 or min(v) < 0:
            raise ValueError("ratios must be non-negative and sum to 1")
        return v


class TrainConfig(_Strict):
    epochs: int = Field(20, ge=1)
    batch_size: int | dict[str, int] = 256
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    lr: float | dict[str, float] = 1e-3
    weight_decay: float = 0.0
    schedule: list[tuple[str, int]] | None = Field(
        None, description="[[task, steps], ...] repeated within an epoch; default one step each")
    monitor: str = "valid.auc"
    patience: int = Field(5, ge=0, description="validations without improvement before stopping")
    eval_every: int = Field(1, ge=1, description="validate every N epochs (and after the last)")
    threads: int | None = Field(None, description="intra-op threads (default 1)")
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

    def for_task(self, value, task: str):
        if isinstance(value, dict):
            if task not in value:
                raise ConfigError(f"no value for task {task!r} in {value}")
            return value[task]
        return value


class EvalConfig(_Strict):
    protocols: list[Literal["ctr", "topk", "kg"]] = ["ctr", "topk"]
    ks: list[int] = [1, 2, 5, 10, 20, 50, 100]
    ndcg: Literal["standard", "legacy", "ktup"] = "standard"
    batch_users: int = 1024
    exclude_valid: bool = Field(True, description="test top-K also excludes valid positives")
    kg_exclude_query: bool = Field(
        False, description="KG completion: drop the query's own entity from the candidates")


class RunConfig(_Strict):
    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = 0
    notes: dict[str, str] = Field(default_factory=dict, description="where each value comes from")


def _parse_value(text: str) -> Any:
    """YAML scalar/flow value; ``1e-6`` (a string in YAML 1.1) is read as a float."""
    value = yaml.safe_load(text) if text != "" else ""
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
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = _parse_value(value)
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict | None = None) -> RunConfig:
    """Read a YAML preset, apply overrides and validate; errors raise :class:`ConfigError`."""
    if raw is None:
        p = Path(path)  # type: ignore[arg-type]
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    raw = apply_overrides(dict(raw), overrides or [])
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        where = f"{path}: " if path else ""
        msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"{where}invalid config: {msgs}") from None
