"""Models by name.

`build_model(config, n_users, n_items)` is the only way the rest of edgerec makes a model, so
a new family needs one entry here. Each family also has a `-tiny` variant (a few dimensions) for
tests that need a real model but not a good one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from edgerec.errors import ConfigError
from edgerec.models.config import ModelConfig

if TYPE_CHECKING:
    from edgerec.models.base import Recommender


class ModelName(StrEnum):
    bpr = "bpr"
    ncf = "ncf"


def _families() -> dict[str, Callable[[ModelConfig, int, int], Recommender]]:
    from edgerec.models.bpr import BPRMF
    from edgerec.models.ncf import NeuMF

    return {"bpr": BPRMF, "ncf": NeuMF}


TINY = {
    "bpr-tiny": ModelConfig(name="bpr", dim=4),
    "ncf-tiny": ModelConfig(name="ncf", dim=4, layers=1),
}


def model_names() -> list[str]:
    return [m.value for m in ModelName] + list(TINY)


def resolve(config: ModelConfig) -> ModelConfig:
    """Expand a `-tiny` name into its full config."""
    if config.name in TINY:
        return TINY[config.name]
    return config


def build_model(config: ModelConfig, n_users: int, n_items: int) -> Recommender:
    config = resolve(config)
    families = _families()
    if config.name not in families:
        raise ConfigError(
            f"model '{config.name}' is unknown: expected one of {', '.join(model_names())}"
        )
    if n_users < 1 or n_items < 1:
        raise ConfigError(f"a model needs users and items, got {n_users} users, {n_items} items")
    return families[config.name](config, n_users, n_items)


def with_size(
    config: ModelConfig, dim: int | None = None, layers: int | None = None
) -> ModelConfig:
    """The same family at another size (a student of a teacher)."""
    changes = {k: v for k, v in (("dim", dim), ("layers", layers)) if v is not None}
    return dataclasses.replace(resolve(config), **changes)
