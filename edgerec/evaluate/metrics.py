"""Full-ranking evaluation: every item is a candidate, as the field now reports.

For each user with at least one held-out item, the model scores the whole catalogue; the
user's training items (and, for the test split, their validation items) are masked out, and
the top K are compared with the held-out items:

- Recall@K = hits in the top K / number of held-out items;
- NDCG@K = DCG / IDCG with DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1) and the
  ideal DCG over min(number held out, K) hits;
- HR@K = 1 when the top K holds at least one held-out item.

Each is averaged over the evaluated users. This masking is RecBole's, so our figures sit beside
its published ones. Scoring is batched: one [batch, n_items] matrix product per batch of users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from edgerec.data.interactions import Interactions, SplitDataset

DEFAULT_KS = (10, 20, 50)
METRICS = ("recall", "ndcg", "hr")

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # [batch] user indices -> [batch, n_items]


class CSR:
    """Per-user item lists in compressed-row form, with a vectorised gather for a batch."""

    def __init__(self, parts: Sequence[Interactions], n_users: int):
        users = np.concatenate([p.users for p in parts]) if parts else np.zeros(0, np.int64)
        items = np.concatenate([p.items for p in parts]) if parts else np.zeros(0, np.int64)
        order = np.argsort(users, kind="stable")
        self.items = items[order]
        self.indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=self.indptr[1:])

    def lengths(self, users: np.ndarray) -> np.ndarray:
        return self.indptr[users + 1] - self.indptr[users]

    def gather(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in batch, item) of every entry of the given users."""
        lens = self.lengths(users)
        rows = np.repeat(np.arange(len(users)), lens)
        # Index of each entry: its user's start plus its position within the user's run.
        run_starts = np.repeat(np.cumsum(lens) - lens, lens)
        positions = np.arange(lens.sum()) - run_starts
        return rows, self.items[np.repeat(self.indptr[users], lens) + positions]


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    return [f"{m}@{k}" for m in METRICS for k in ks]


@torch.no_grad()
def evaluate(
    score_all: ScoreFn,
    dataset: SplitDataset,
    split: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean Recall, NDCG and HR at each K over the users with held-out items in `split`."""
    held_out = {"valid": dataset.valid, "test": dataset.test}[split]
    masked = [dataset.train] + ([dataset.valid] if split == "test" else [])
    return rank_and_score(
        score_all, masked, held_out, dataset.n_users, dataset.n_items, ks, batch_size, device
    )


def rank_and_score(
    score_all: ScoreFn,
    masked: Sequence[Interactions],
    held_out: Interactions,
    n_users: int,
    n_items: int,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
    device: str = "cpu",
) -> dict[str, float]:
    mask_csr = CSR(masked, n_users)
    target_csr = CSR([held_out], n_users)
    users = np.nonzero(target_csr.lengths(np.arange(n_users)) > 0)[0]
    max_k = min(max(ks), n_items)
    totals = dict.fromkeys(metric_names(ks), 0.0)

    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = score_all(torch.from_numpy(batch).to(device)).float().cpu()  # [b, n_items]
        rows, cols = mask_csr.gather(batch)
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        top = torch.topk(scores, max_k, dim=1).indices  # [b, max_k]

        rows, cols = target_csr.gather(batch)
        relevant = torch.zeros(len(batch), n_items, dtype=torch.bool)
        relevant[torch.from_numpy(rows), torch.from_numpy(cols)] = True
        hits = torch.gather(relevant, 1, top).double()  # [b, max_k]
        n_relevant = torch.from_numpy(target_csr.lengths(batch)).double()
        _accumulate(totals, hits, n_relevant, ks)

    return {name: value / max(len(users), 1) for name, value in totals.items()}


def _accumulate(totals: dict, hits: torch.Tensor, n_relevant: torch.Tensor, ks) -> None:
    discounts = 1.0 / torch.log2(torch.arange(2, hits.shape[1] + 2, dtype=torch.float64))
    cum_hits = hits.cumsum(1)
    cum_dcg = (hits * discounts).cumsum(1)
    cum_ideal = discounts.cumsum(0)
    for k in ks:
        kk = min(k, hits.shape[1])
        ideal = cum_ideal[(torch.clamp(n_relevant, max=kk) - 1).long()]
        totals[f"recall@{k}"] += (cum_hits[:, kk - 1] / n_relevant).sum().item()
        totals[f"ndcg@{k}"] += (cum_dcg[:, kk - 1] / ideal).sum().item()
        totals[f"hr@{k}"] += (cum_hits[:, kk - 1] > 0).double().sum().item()
