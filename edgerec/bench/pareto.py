"""The Pareto frontier of a benchmark: the models no other model beats on both cost and accuracy.

A point (cost, value) is dominated when another point costs no more and scores no less, and is
strictly better on one of the two. The frontier is every point not dominated; two identical
points are both on it. Costs are latency or bytes (lower is better), values Recall@K (higher is
better). Pure Python, quadratic in the number of points: a benchmark has tens of rows.
"""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], values: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, in order of increasing cost."""
    if len(costs) != len(values):
        raise ValueError(f"{len(costs)} costs but {len(values)} values")
    points = list(zip(costs, values, strict=True))
    front = [i for i, p in enumerate(points) if not any(_dominates(q, p) for q in points)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def frontier_rows(rows: Sequence[dict], cost, value: str) -> list[dict]:
    """The rows on the frontier of `cost(row)` against `row[value]`; rows lacking either skip."""
    usable = [r for r in rows if r.get(value) is not None and cost(r) is not None]
    front = pareto_front([cost(r) for r in usable], [r[value] for r in usable])
    return [usable[i] for i in front]


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])
