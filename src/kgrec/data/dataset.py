"""The one dataset object every model and protocol works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kgrec.errors import DataError


@dataclass
class Split:
    """Labelled interactions ``(user, item, label)`` for train, validation and test.

    Label 1 is an observed (positive) interaction, 0 a sampled negative. Top-K protocols
    use only the positives of each part.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


@dataclass
class KGDataset:
    """Interactions, a knowledge graph and the item-entity alignment, with integer ids.

    Attributes:
        interactions: ``int64 (n, 3)`` rows ``user, item, label``.
        triples: ``int64 (m, 3)`` rows ``head, relation, tail`` (entity / relation ids).
        item_entity: ``int64 (n_items,)`` aligned entity of each item, ``-1`` if none.
        user_ids, item_ids, entity_ids, relation_names: original identifiers by new id
            (``None`` when the source only had integer ids).
        given_split: a split shipped with the data (used as is when present).
        kg_split: KG triples split for completion, ``{"train"|"valid"|"test": (k, 3)}``.
    """

    name: str
    interactions: np.ndarray
    triples: np.ndarray
    item_entity: np.ndarray
    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    user_ids: list[str] | None = None
    item_ids: list[str] | None = None
    entity_ids: list[str] | None = None
    relation_names: list[str] | None = None
    given_split: Split | None = None
    kg_split: dict[str, np.ndarray] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = np.asarray(self.interactions, dtype=np.int64).reshape(-1, 3)
        self.triples = np.asarray(self.triples, dtype=np.int64).reshape(-1, 3)
        self.item_entity = np.asarray(self.item_entity, dtype=np.int64)
        self.validate()

    def validate(self) -> None:
        """Check every id is in range; raise :class:`DataError` naming what is wrong."""
        inter, kg = self.interactions, self.triples
        checks = [
            (inter[:, 0], self.n_users, "user id"),
            (inter[:, 1], self.n_items, "item id"),
            (kg[:, 0], self.n_entities, "head entity id"),
            (kg[:, 1], self.n_relations, "relation id"),
            (kg[:, 2], self.n_entities, "tail entity id"),
        ]
        for values, bound, what in checks:
            if len(values) and (values.min() < 0 or values.max() >= bound):
                bad = int(values[(values < 0) | (values >= bound)][0])
                raise DataError(self.name, None, f"{what} {bad} outside [0, {bound})")
        if len(inter) and not np.isin(inter[:, 2], (0, 1)).all():
            raise DataError(self.name, None, "labels must be 0 or 1")
        if self.item_entity.shape != (self.n_items,):
            raise DataError(self.name, None, "item_entity must have one entry per item")
        if (self.item_entity >= self.n_entities).any():
            raise DataError(self.name, None, "item aligned to an unknown entity")

    @property
    def positives(self) -> np.ndarray:
        """``(user, item)`` pairs with label 1."""
        return self.interactions[self.interactions[:, 2] == 1, :2]

    def stats(self) -> dict[str, int]:
        """Counts as reported in the papers' dataset tables."""
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self.interactions),
            "positives": int((self.interactions[:, 2] == 1).sum()),
            "entities": self.n_entities,
            "relations": self.n_relations,
            "triples": len(self.triples),
            "linked_items": int((self.item_entity >= 0).sum()),
        }

    def entity_items(self) -> np.ndarray:
        """``int64 (n_entities,)``: the item aligned with each entity, ``-1`` if none."""
        out = np.full(self.n_entities, -1, dtype=np.int64)
        linked = np.flatnonzero(self.item_entity >= 0)
        out[self.item_entity[linked]] = linked
        return out
