"""From a raw table of (user, item[, rating, timestamp]) to implicit feedback over indices.

The field's usual steps, in this order: keep ratings at or above a threshold (default: every
interaction is a positive), drop repeated (user, item) pairs keeping the earliest, apply a k-core
filter, and remap raw ids to contiguous indices.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from edgerec.data.interactions import IdMap, Interactions
from edgerec.errors import DataError

log = logging.getLogger(__name__)


def to_implicit(
    table: pd.DataFrame, *, source: str, rating_threshold: float | None = None, kcore: int = 0
) -> pd.DataFrame:
    """Threshold, de-duplicate and k-core filter a raw table; raises when nothing is left."""
    rows_in = len(table)
    if rating_threshold is not None:
        if "rating" not in table.columns:
            raise DataError(f"{source}: --rating-threshold needs a rating column, found none")
        table = table[table["rating"] >= rating_threshold]

    # Keep the earliest occurrence of a pair: with timestamps that is the first interaction in
    # time, which is what leave-one-out should see.
    if "timestamp" in table.columns:
        table = table.sort_values("timestamp", kind="stable")
    table = table.drop_duplicates(subset=["user", "item"], keep="first")

    if kcore > 0:
        table = kcore_filter(table, kcore)

    if table.empty:
        raise DataError(
            f"{source}: nothing left after filtering {rows_in} rows "
            f"(rating threshold {rating_threshold}, {kcore}-core); loosen the filters"
        )
    log.debug("%s: %d rows in, %d implicit interactions out", source, rows_in, len(table))
    return table


def kcore_filter(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than k interactions until none remain."""
    while True:
        user_counts = table["user"].map(table["user"].value_counts())
        item_counts = table["item"].map(table["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return table
        table = table[keep]


def remap(tables: list[pd.DataFrame]) -> tuple[list[Interactions], IdMap]:
    """Map raw ids to indices shared by every table (pre-split data has three)."""
    users = pd.unique(pd.concat([t["user"] for t in tables], ignore_index=True))
    items = pd.unique(pd.concat([t["item"] for t in tables], ignore_index=True))
    # Sorting the raw ids (numerically when they are numbers) makes the mapping independent of
    # row order, so the same data always gets the same indices.
    users = _sorted_ids(users)
    items = _sorted_ids(items)
    user_index = pd.Index(users)
    item_index = pd.Index(items)

    out = []
    for t in tables:
        ts = t["timestamp"].to_numpy(np.float64) if "timestamp" in t.columns else None
        out.append(
            Interactions(
                users=user_index.get_indexer(t["user"]).astype(np.int64),
                items=item_index.get_indexer(t["item"]).astype(np.int64),
                timestamps=ts,
            )
        )
    return out, IdMap(users=[str(u) for u in users], items=[str(i) for i in items])


def _sorted_ids(ids: np.ndarray) -> list[str]:
    values = [str(v) for v in ids]
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)
