"""The popularity baseline: every user gets the items most often seen in training.

It has no parameters and no representations; it is the floor every trained model must beat.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Popularity:
    def __init__(self, train_items: np.ndarray, n_items: int):
        counts = np.bincount(train_items, minlength=n_items).astype(np.float32)
        self.counts = torch.from_numpy(counts)  # [n_items]

    def score_all(self, users: Tensor) -> Tensor:
        return self.counts.expand(users.shape[0], -1).clone()  # [batch, n_items]
