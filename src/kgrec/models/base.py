"""Base class and registry shared by every kgrec model.

A model is a :class:`torch.nn.Module` with typed constructor arguments. It declares its
training tasks (``tasks``) and, for each, the kind of sampler that feeds it
(``task_samplers``). Every loss goes through ``forward(batch, task=...)`` so that a
``DistributedDataParallel`` wrapper sees all of them. Scoring has a batched
``score(users, items)`` and a full-ranking ``score_all(users)`` path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from kgrec.data.dataset import KGDataset, Split
from kgrec.errors import ConfigError

MODELS: dict[str, type[Model]] = {}


def register_model(name: str, paper: str = ""):
    """Class decorator adding a model to :data:`MODELS` under ``name``; ``paper`` is the
    short citation of the paper it implements (``Authors, VENUE YEAR (NAME)``), shown by
    ``kgrec models``."""

    def deco(cls: type[Model]) -> type[Model]:
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        cls.name = name
        cls.paper = paper
        MODELS[name] = cls
        return cls

    return deco


def get_model_class(name: str) -> type[Model]:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


class Model(nn.Module):
    """A recommender (or KG embedding) model.

    Subclasses set ``tasks`` (the first is the main task, whose sampler defines an epoch)
    and ``task_samplers`` mapping each task to a sampler kind of
    :data:`kgrec.data.samplers.SAMPLERS`.
    """

    name: ClassVar[str] = "model"
    #: short citation of the model's paper (set by :func:`register_model`)
    paper: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("rec",)
    task_samplers: ClassVar[dict[str, str]] = {"rec": "ctr"}
    #: ``True`` when ``score`` returns a logit of a click probability (CTR models).
    ctr_output: ClassVar[bool] = False
    #: How the loss depends on the batch, for distributed steps (each rank a slice of the
    #: global batch, gradients averaged by DDP). ``"mean"``: the trainer scales a rank's
    #: loss by ``world * rows_rank / rows_batch``, exact for losses that are means over the
    #: batch plus batch-independent terms. ``"sum"``: the batch carries ``loss_scale``
    #: (``world``, or 0 for a rank without rows) and ``forward`` multiplies the terms that
    #: sum over batch rows by it, leaving batch-independent terms (regularisers) as they are.
    #: A ``"mean"`` model whose loss also has a term summed over the batch rows divides that
    #: term by ``batch["batch_share"]`` (``rows_rank / rows_batch``, set on distributed steps).
    batch_reduction: ClassVar[str] = "mean"

    @classmethod
    def build(cls, dataset: KGDataset, train: Split, **kwargs: Any) -> Model:
        """Make the model for ``dataset``; ``train`` holds the only interactions it may see."""
        return cls(
            n_users=dataset.n_users,
            n_items=dataset.n_items,
            n_entities=dataset.n_entities,
            n_relations=dataset.n_relations,
            **kwargs,
        )

    def load_pretrained(self, path: str | Path) -> list[str]:
        """Warm start (KTUP Section 6.3): copy every tensor of the kgrec checkpoint ``path``
        (``{"model": state_dict, ...}``, e.g. a run's ``model.pt``, loaded with
        ``weights_only=True``) whose name and shape match one of this model's parameters;
        returns the names copied (also kept in ``self.loaded[path]``). Other names are
        ignored; a file that matches nothing is a :class:`ConfigError`."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: pretrained checkpoint not found")
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - truncated, foreign or not a torch file
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)
            raise ConfigError(f"{p}: pretrained file is not a readable kgrec checkpoint: "
                              f"{first}") from None
        state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise ConfigError(f"{p}: not a kgrec checkpoint (expected {{'model': state_dict}})")
        own = dict(self.named_parameters())
        done = []
        with torch.no_grad():
            for name, value in state.items():
                if name in own and isinstance(value, Tensor) and value.shape == own[name].shape:
                    own[name].copy_(value)
                    done.append(name)
        if not done:
            raise ConfigError(f"{p}: no tensor matches a {self.name} parameter by name and "
                              f"shape (expected some of {', '.join(sorted(own))})")
        if not hasattr(self, "loaded"):
            self.loaded: dict[str, list[str]] = {}
        self.loaded[str(p)] = done
        return done

    def finish_warm_start(self) -> None:
        """Called once after every ``init_from`` checkpoint is loaded (models that combine
        tables from several checkpoints adjust them here; default: nothing)."""

    def task_weights(self) -> dict[str, float]:
        """Constant factors ``forward`` applies to whole task losses (e.g. KTUP's lambda and
        1 - lambda, Eq. 21); absent tasks have 1. They act only when the tasks share one
        optimiser (``train.joint``); the experiment warns otherwise."""
        return {}

    def step_shares(self) -> dict[str, float]:
        """Shares of the alternating steps a loss weight asks for (KTUP's lambda read as the
        authors' share of steps); the experiment warns when the schedule gives others."""
        return {}

    def sampler_defaults(self, task: str) -> dict[str, Any]:
        """Sampler options this model needs for ``task`` (the config's options win)."""
        return {}

    def forward(self, batch: dict[str, Tensor], task: str) -> Tensor:  # pragma: no cover
        """Scalar loss of ``task`` on ``batch``."""
        raise NotImplementedError

    def score(self, users: Tensor, items: Tensor) -> Tensor:  # pragma: no cover
        """Scores of ``(users[k], items[k])`` pairs, higher is better, shape ``(B,)``."""
        raise NotImplementedError

    def score_all(self, users: Tensor) -> Tensor:
        """Scores of every item for each user, shape ``(B, n_items)``.

        The default pairs every user with every item through :meth:`score`; models
        override it with a faster factorised form.
        """
        n_items = self.n_items
        u = users.repeat_interleave(n_items)
        i = torch.arange(n_items, device=users.device).repeat(len(users))
        return self.score(u, i).view(len(users), n_items)
