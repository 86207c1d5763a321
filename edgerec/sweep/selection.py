"""Which cell of a sweep to deploy: budgets, the Pareto frontiers, and the smallest cell within
budget. Pure functions over the sweep's table (`edgerec.sweep.results`), one dict per cell.

A budget bound is either absolute or relative to the teacher, and says which in its text:

    0.33     absolute: Recall@K of at least 0.33, 2.5 ms, 20000 bytes
    0.9x     relative: 0.9 times the teacher's figure (its fp32 bundle, measured the same way)

Latency is the p50 of one call at batch 1 on the budget's device, at the fewest threads the
sweep measured; bytes are the model file's. The chosen cell is the one with the fewest bytes
among those meeting every bound, ties going to the lower latency, then the higher recall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgerec.bench.pareto import frontier_rows
from edgerec.errors import ConfigError

RELATIVE = "x"
# Files within this share of each other's bytes are the same size, for `Selection.same_size`.
SAME_SIZE = 0.01


@dataclass(frozen=True)
class Bound:
    value: float
    # True: `value` multiplies the teacher's figure; False: it is the figure itself.
    relative: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ConfigError(f"a budget must be a number, got {self.value!r}")
        if not math.isfinite(self.value) or self.value <= 0:
            raise ConfigError(f"a budget must be a finite number > 0, got {self.value!r}")

    @classmethod
    def parse(cls, text: str | float, what: str) -> Bound:
        """'0.9x' (relative to the teacher) or '0.33' (absolute); a number is absolute."""
        if isinstance(text, int | float) and not isinstance(text, bool):
            return cls(float(text))
        raw = str(text).strip().lower()
        relative = raw.endswith(RELATIVE)
        try:
            value = float(raw.removesuffix(RELATIVE))
        except ValueError:
            raise ConfigError(
                f"{what} '{text}' is not a budget: expected a number such as 0.33 (absolute) "
                f"or one followed by x such as 0.9x (times the teacher's)"
            ) from None
        try:
            return cls(value, relative)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    @property
    def text(self) -> str:
        return f"{self.value:g}{RELATIVE if self.relative else ''}"


@dataclass(frozen=True)
class Budget:
    min_recall: Bound | None = None
    max_latency_ms: Bound | None = None
    max_bytes: Bound | None = None
    # The device whose latency the budget bounds, and whose cells are candidates.
    device: str = "cpu"

    def __post_init__(self) -> None:
        recall = self.min_recall
        if recall is not None and not recall.relative and recall.value > 1:
            raise ConfigError(
                f"min_recall {recall.value:g} is above 1: a recall is a fraction (0.33), or "
                f"relative to the teacher when followed by x ({recall.value:g}x)"
            )

    @property
    def bounds(self) -> dict[str, Bound]:
        named = {
            "min_recall": self.min_recall,
            "max_latency_ms": self.max_latency_ms,
            "max_bytes": self.max_bytes,
        }
        return {name: bound for name, bound in named.items() if bound is not None}


@dataclass(frozen=True)
class Reference:
    """The teacher's figures on the budget's device, which relative bounds multiply."""

    recall: float | None
    latency_ms: float | None
    bytes: int | None
    # Where the recall came from: the teacher's fp32 bundle on the device, or its run.
    recall_source: str = "teacher fp32 bundle"


@dataclass(frozen=True)
class Limit:
    """One bound made absolute: what a row's `key` must reach or stay under."""

    key: str
    at_least: bool
    value: float
    text: str

    def shortfall(self, row: dict) -> float:
        """How far the row misses, as a share of the limit: 0 when met, inf when unknown."""
        value = row.get(self.key)
        if value is None:
            return math.inf
        miss = (self.value - value) if self.at_least else (value - self.value)
        return max(miss, 0.0) / self.value

    def met(self, row: dict) -> bool:
        return self.shortfall(row) == 0.0


@dataclass
class Selection:
    device: str
    limits: list[Limit]
    # Rows (ok, on the device) no other row beats on both recall and the cost.
    frontier_latency: list[dict]
    frontier_bytes: list[dict]
    meeting: list[dict]
    chosen: dict | None
    message: str
    candidates: int = 0
    reference: Reference | None = field(default=None)

    @property
    def same_size(self) -> list[dict]:
        """The other cells within budget whose files are within SAME_SIZE of the chosen one's.

        Two exports of one architecture differ by a few bytes of graph encoding, and the
        latencies of such twins by about the measurement noise, so the choice among them says
        little: a reader should see them beside it (with their recall).
        """
        if self.chosen is None:
            return []
        limit = self.chosen["bytes"] * (1 + SAME_SIZE)
        return [r for r in self.meeting if r["bytes"] <= limit and r["cell"] != self.chosen["cell"]]

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "limits": [limit.text for limit in self.limits],
            "reference": None if self.reference is None else vars(self.reference),
            "candidates": self.candidates,
            "meeting": [r["cell"] for r in self.meeting],
            "chosen": self.chosen,
            "same_size": [r["cell"] for r in self.same_size],
            "message": self.message,
            "frontier_latency": [r["cell"] for r in self.frontier_latency],
            "frontier_bytes": [r["cell"] for r in self.frontier_bytes],
        }


def limits_of(budget: Budget, reference: Reference, k: int) -> list[Limit]:
    """The budget's bounds as absolute limits; a relative bound needs the teacher's figure."""
    specs = {
        "min_recall": ("recall", True, f"recall@{k}", "≥", reference.recall),
        "max_latency_ms": ("latency_ms", False, "p50 ms", "≤", reference.latency_ms),
        "max_bytes": ("bytes", False, "bytes", "≤", reference.bytes),
    }
    limits = []
    for name, bound in budget.bounds.items():
        key, at_least, label, sign, teacher = specs[name]
        if not bound.relative:
            limits.append(Limit(key, at_least, bound.value, f"{label} {sign} {_num(bound.value)}"))
            continue
        if teacher is None:
            raise ConfigError(
                f"{name} {bound.text} is relative to the teacher, whose {label} on "
                f"{budget.device} was not measured: give an absolute figure (without x)"
            )
        value = bound.value * teacher
        text = f"{label} {sign} {_num(value)} ({bound.text} the teacher's {_num(teacher)})"
        limits.append(Limit(key, at_least, value, text))
    return limits


def select(rows: Sequence[dict], budget: Budget, reference: Reference, k: int) -> Selection:
    """The frontiers of the budget's device and the smallest cell meeting every limit."""
    limits = limits_of(budget, reference, k)
    measured = [r for r in rows if r["device"] == budget.device and r["status"] == "ok"]
    meeting = [r for r in measured if all(limit.met(r) for limit in limits)]
    chosen = min(meeting, key=_smallest, default=None)

    if chosen is not None:
        message = f"{chosen['cell']} is the smallest cell within budget ({chosen['bytes']:,} bytes)"
    else:
        message = _why_none(rows, measured, limits, budget.device)
    return Selection(
        device=budget.device,
        limits=limits,
        frontier_latency=frontier_rows(measured, lambda r: r.get("latency_ms"), "recall"),
        frontier_bytes=frontier_rows(measured, lambda r: r.get("bytes"), "recall"),
        meeting=sorted(meeting, key=_smallest),
        chosen=chosen,
        message=message,
        candidates=len(measured),
        reference=reference,
    )


def _smallest(row: dict) -> tuple:
    latency = row.get("latency_ms")
    recall = row.get("recall")
    return (
        row["bytes"],
        math.inf if latency is None else latency,
        -(recall if recall is not None else -math.inf),
        row["cell"],
    )


def _why_none(rows: Sequence[dict], measured: list[dict], limits: list[Limit], device: str) -> str:
    """Which limits the cells miss, how many meet each, and the cell that came closest."""
    if not measured:
        on_device = [r for r in rows if r["device"] == device]
        states = sorted({r["status"] for r in on_device})
        detail = f" ({len(on_device)} cells: {', '.join(states)})" if on_device else ""
        return f"no cell was measured on {device}{detail}: nothing to choose from"

    counts = "; ".join(
        f"{limit.text}: {sum(limit.met(r) for r in measured)} of {len(measured)} cells"
        for limit in limits
    )

    def worst(row: dict) -> float:
        return max(limit.shortfall(row) for limit in limits)

    closest = min(measured, key=lambda r: (worst(r), _smallest(r)))
    misses = ", ".join(
        f"{limit.text} by {limit.shortfall(closest):.1%} ({_num(closest.get(limit.key))})"
        for limit in limits
        if not limit.met(closest)
    )
    return (
        f"no cell on {device} meets every budget ({counts}); closest: {closest['cell']}, "
        f"which misses {misses}"
    )


def _num(value: float | None) -> str:
    if value is None:
        return "unmeasured"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"
