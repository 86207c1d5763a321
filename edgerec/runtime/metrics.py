"""Full-ranking accuracy in numpy: the one implementation training, export checks, benchmarks
and devices all use.

For each user with at least one held-out item the whole catalogue is scored, the user's masked
items (training, and for the test split validation) are set to -inf, and the top K are compared
with the held-out items:

- Recall@K = hits in the top K / number of held-out items;
- NDCG@K = DCG / IDCG, DCG summing 1 / log2(r + 1) over hits at 1-based rank r, the ideal DCG
  over min(number held out, K) hits;
- HR@K = 1 when the top K holds at least one held-out item.

Each is averaged over the evaluated users. The masking is RecBole's, so figures sit beside its
published ones. Needs numpy only, so it runs on a device beside onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_KS = (10, 20, 50)
METRICS = ("recall", "ndcg", "hr")

ScoreFn = Callable[[np.ndarray], np.ndarray]  # [batch] int64 users -> [batch, n_items] scores


class CSR:
    """Per-user item lists in compressed-row form, with a vectorised gather for a batch."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int):
        order = np.argsort(users, kind="stable")
        self.items = np.asarray(items, dtype=np.int64)[order]
        self.indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=self.indptr[1:])

    def lengths(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]

    def gather(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in batch, item) of every entry of the given users."""
        lens = self.lengths(users)
        rows = np.repeat(np.arange(len(users)), lens)
        # Each entry's index: its user's start plus its position within the user's run.
        run_starts = np.repeat(np.cumsum(lens) - lens, lens)
        positions = np.arange(lens.sum()) - run_starts
        return rows, self.items[np.repeat(self.indptr[users], lens) + positions]


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    return [f"{m}@{k}" for m in METRICS for k in ks]


def rank_and_score(
    score_all: ScoreFn,
    masked: CSR,
    held_out: CSR,
    n_items: int,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
) -> dict[str, float]:
    """Mean Recall, NDCG and HR at each K over the users that have held-out items."""
    n_users = len(held_out.indptr) - 1
    users = np.nonzero(held_out.lengths(np.arange(n_users)) > 0)[0]
    max_k = min(max(ks), n_items)
    totals = dict.fromkeys(metric_names(ks), 0.0)

    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score_all(batch), dtype=np.float32)  # [b, n_items], a writable copy
        scores[masked.gather(batch)] = -np.inf
        top = top_k(scores, max_k)  # [b, max_k]

        relevant = np.zeros((len(batch), n_items), dtype=bool)
        relevant[held_out.gather(batch)] = True
        hits = np.take_along_axis(relevant, top, axis=1).astype(np.float64)  # [b, max_k]
        _accumulate(totals, hits, held_out.lengths(batch).astype(np.float64), ks)

    return {name: value / max(len(users), 1) for name, value in totals.items()}


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """[batch, k] indices of the k largest scores of each row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _accumulate(totals: dict, hits: np.ndarray, n_relevant: np.ndarray, ks) -> None:
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2, dtype=np.float64))
    cum_hits = hits.cumsum(1)
    cum_dcg = (hits * discounts).cumsum(1)
    cum_ideal = discounts.cumsum()
    for k in ks:
        kk = min(k, hits.shape[1])
        ideal = cum_ideal[np.minimum(n_relevant, kk).astype(np.int64) - 1]
        totals[f"recall@{k}"] += float((cum_hits[:, kk - 1] / n_relevant).sum())
        totals[f"ndcg@{k}"] += float((cum_dcg[:, kk - 1] / ideal).sum())
        totals[f"hr@{k}"] += float((cum_hits[:, kk - 1] > 0).sum())
