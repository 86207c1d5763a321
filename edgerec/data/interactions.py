"""The in-memory form of a dataset: implicit-feedback interactions over contiguous indices.

Every loader ends here. Raw user and item ids (whatever the file used) are remapped to
contiguous indices `0..n-1`; `IdMap` keeps the raw ids so that a trained model or an export can
translate back. A `SplitDataset` is what training, evaluation, distillation and export share:
the train / valid / test interactions, the sizes of the index spaces and a fingerprint that
identifies the exact data (a student must be distilled on the data its teacher saw).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerec.errors import DataError


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, one entry per (user, item) interaction, in index space."""

    users: np.ndarray  # [n] int64
    items: np.ndarray  # [n] int64
    timestamps: np.ndarray | None = None  # [n] float64, None when the source has none

    def __post_init__(self) -> None:
        if self.users.shape != self.items.shape:
            raise DataError(
                f"users and items differ in length: {self.users.shape} vs {self.items.shape}"
            )
        if self.timestamps is not None and self.timestamps.shape != self.users.shape:
            raise DataError("timestamps must have one entry per interaction")

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def take(self, index: np.ndarray) -> Interactions:
        ts = None if self.timestamps is None else self.timestamps[index]
        return Interactions(self.users[index], self.items[index], ts)

    def pairs(self) -> np.ndarray:
        """[n, 2] int64 (user, item)."""
        return np.stack([self.users, self.items], axis=1)


@dataclass(frozen=True)
class IdMap:
    """Raw ids in index order: `users[i]` is the raw id of user index i."""

    users: list[str]
    items: list[str]

    def to_json(self) -> dict:
        return {"users": self.users, "items": self.items}

    @classmethod
    def from_json(cls, payload: dict) -> IdMap:
        return cls(
            users=[str(u) for u in payload["users"]], items=[str(i) for i in payload["items"]]
        )

    @classmethod
    def identity(cls, n_users: int, n_items: int) -> IdMap:
        return cls(users=[str(u) for u in range(n_users)], items=[str(i) for i in range(n_items)])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> IdMap:
        return cls.from_json(json.loads(path.read_text()))


@dataclass(frozen=True)
class SplitDataset:
    """Train / valid / test interactions over one index space."""

    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    id_map: IdMap
    _fingerprint: list = field(default_factory=list, repr=False, compare=False)

    @property
    def n_interactions(self) -> int:
        return len(self.train) + len(self.valid) + len(self.test)

    @property
    def density(self) -> float:
        return self.n_interactions / float(self.n_users * self.n_items)

    def fingerprint(self) -> str:
        """A short hash of the sizes and of every split's pairs: equal data, equal fingerprint."""
        if not self._fingerprint:
            digest = hashlib.sha256()
            digest.update(f"{self.n_users}:{self.n_items}".encode())
            for part in (self.train, self.valid, self.test):
                digest.update(np.ascontiguousarray(part.pairs(), dtype=np.int64).tobytes())
                digest.update(b"|")
            self._fingerprint.append(digest.hexdigest()[:16])
        return self._fingerprint[0]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "density": self.density,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "fingerprint": self.fingerprint(),
        }
