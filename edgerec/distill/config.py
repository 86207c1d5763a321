"""How a student is distilled: the `distill` table of every run config."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgerec.distill.registry import Method
from edgerec.errors import ConfigError

REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class DistillConfig:
    method: str = "none"
    # Weight of the distillation loss against the base loss. The reference's 1e-3 is relative to
    # a summed base loss and a summed distillation loss (reduction "sum").
    lambda_: float = 1e-3
    # HTD only: weight of the topology term against the group-assignment term.
    alpha: float = 0.5
    # HTD and DE: groups (experts) per side, users and items each.
    groups: int = 30
    # "sum" adds the terms as the reference does, so the loss grows with the batch; "mean"
    # divides each term by its number of terms.
    reduction: str = "sum"
    # HTD and DE: Gumbel-softmax temperature, annealed geometrically from start to end.
    temperature_start: float = 1.0
    temperature_end: float = 1e-10

    def __post_init__(self) -> None:
        if isinstance(self.method, Method):
            # Stored as the plain name, so that the config saves and compares as text.
            object.__setattr__(self, "method", self.method.value)

        methods = [m.value for m in Method]
        checks = [
            ("method", self.method in methods, f"one of {', '.join(methods)}"),
            ("lambda_", _is_number(self.lambda_) and self.lambda_ >= 0, "a number >= 0"),
            ("alpha", _is_number(self.alpha) and 0 <= self.alpha <= 1, "a number in [0, 1]"),
            ("groups", _is_int(self.groups) and self.groups >= 1, "an integer >= 1"),
            ("reduction", self.reduction in REDUCTIONS, f"one of {', '.join(REDUCTIONS)}"),
            (
                "temperature_start",
                _is_number(self.temperature_start) and self.temperature_start > 0,
                "a number > 0",
            ),
            (
                "temperature_end",
                _is_number(self.temperature_end) and self.temperature_end > 0,
                "a number > 0",
            ),
        ]
        problems = [
            f"distill.{name}={getattr(self, name)!r}: expected {expected}"
            for name, ok, expected in checks
            if not ok
        ]
        if not problems and self.temperature_end > self.temperature_start:
            problems.append(
                f"distill.temperature_end={self.temperature_end!r}: expected a number <= "
                f"temperature_start ({self.temperature_start!r}), the temperature only decreases"
            )
        if problems:
            raise ConfigError("; ".join(problems))


def _is_number(value: object) -> bool:
    # bool is an int to Python but never a sensible weight; NaN and inf fail every range check.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
