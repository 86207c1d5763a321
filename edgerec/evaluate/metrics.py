"""Full-ranking evaluation of a model on a split of a `SplitDataset`.

The metrics themselves (Recall, NDCG, HR at K, RecBole's masking) live in
`edgerec.runtime.metrics`, in numpy, so that a device measures an export exactly as training
measured the model. This module adapts a torch model and a dataset to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgerec.data.interactions import Interactions, SplitDataset
from edgerec.runtime.metrics import CSR, DEFAULT_KS, rank_and_score

ScoreFn = Callable  # [batch] user indices (a torch tensor) -> [batch, n_items] torch scores


def split_csr(dataset: SplitDataset, split: str) -> tuple[CSR, CSR]:
    """(masked, held out) for a split: valid masks train; test masks train and valid."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be valid or test, got {split!r}")
    held = dataset.valid if split == "valid" else dataset.test
    masked: list[Interactions] = [dataset.train] + ([dataset.valid] if split == "test" else [])
    users = np.concatenate([p.users for p in masked])
    items = np.concatenate([p.items for p in masked])
    return CSR(users, items, dataset.n_users), CSR(held.users, held.items, dataset.n_users)


def evaluate(
    score_all: ScoreFn,
    dataset: SplitDataset,
    split: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 512,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean Recall, NDCG and HR at each K of a torch scoring function on `split`."""
    import torch

    def numpy_scores(users: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return score_all(torch.from_numpy(users).to(device)).float().cpu().numpy()

    masked, held_out = split_csr(dataset, split)
    return rank_and_score(numpy_scores, masked, held_out, dataset.n_items, ks, batch_size)
