"""What data a run uses and how it is split: the `data` table of every run config.

Imports nothing heavy, so the CLI can build its choices from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edgerec.data.synthetic import SyntheticConfig
from edgerec.errors import ConfigError

SPLITS = ("ratio", "loo")


class Format(StrEnum):
    """The file layouts the loaders understand; `auto` picks one from the name and content."""

    auto = "auto"
    udata = "udata"
    dat = "dat"
    movielens_csv = "movielens-csv"
    inter = "inter"
    csv = "csv"


@dataclass(frozen=True)
class ColumnMap:
    """Which header columns hold the user, the item and, optionally, the rating and timestamp
    (a generic CSV/TSV file, or the fields of a RecBole file)."""

    user: str = "user"
    item: str = "item"
    rating: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True)
class DataConfig:
    # A file, a folder of pre-split RecBole files, or "synthetic" for the built-in dataset.
    source: str = "synthetic"
    format: str = "auto"
    split: str = "ratio"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2020
    # None: every interaction is a positive. Otherwise ratings below it are dropped.
    rating_threshold: float | None = None
    kcore: int = 0
    # Pre-split data given as three explicit files: `source` is then the train file.
    valid_path: str | None = None
    test_path: str | None = None
    sep: str | None = None
    columns: ColumnMap = field(default_factory=ColumnMap)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.format not in set(Format):
            names = ", ".join(f.value for f in Format)
            raise ConfigError(f"format '{self.format}' is unknown: expected one of {names}")
        if self.split not in SPLITS:
            raise ConfigError(
                f"split '{self.split}' is unknown: expected one of {', '.join(SPLITS)}"
            )
        check_ratios(self.ratios)
        if self.kcore < 0:
            raise ConfigError(f"kcore must be >= 0, got {self.kcore}")
        if (self.valid_path is None) != (self.test_path is None):
            raise ConfigError("pre-split data needs both a valid and a test file, got only one")

    @property
    def is_synthetic(self) -> bool:
        return self.source == "synthetic"


def check_ratios(ratios: tuple[float, ...]) -> None:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(
            f"split ratios {tuple(ratios)} are invalid: expected three non-negative numbers "
            "summing to 1, such as 0.8,0.1,0.1"
        )
