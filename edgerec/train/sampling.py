"""Negative sampling: items a user has not interacted with in training, drawn uniformly.

Drawn afresh every epoch, for the whole epoch at once: one vectorised draw, then a redraw of
only the collisions with a training positive until none are left. Membership is a binary search
in the sorted keys `user * n_items + item`, so memory stays linear in the interactions even for
catalogues where a dense user × item mask would not fit.
"""

from __future__ import annotations

import numpy as np

from edgerec.errors import DataError


class NegativeSampler:
    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int):
        self.n_items = n_items
        self.positive_keys = np.unique(users.astype(np.int64) * n_items + items)
        counts = np.bincount(users)
        if counts.size and counts.max() >= n_items:
            worst = int(np.argmax(counts))
            raise DataError(
                f"user index {worst} interacted with all {n_items} items: no negative to sample"
            )

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64) * self.n_items + items
        where = np.searchsorted(self.positive_keys, keys)
        where = np.minimum(where, len(self.positive_keys) - 1)
        return self.positive_keys[where] == keys

    def sample(self, users: np.ndarray, n_per_user: int, rng: np.random.Generator) -> np.ndarray:
        """[len(users), n_per_user] negatives for each entry of `users`."""
        repeated = np.repeat(users, n_per_user)
        negatives = rng.integers(0, self.n_items, size=repeated.shape[0])
        bad = np.nonzero(self.is_positive(repeated, negatives))[0]
        while bad.size:
            negatives[bad] = rng.integers(0, self.n_items, size=bad.size)
            bad = bad[self.is_positive(repeated[bad], negatives[bad])]
        return negatives.reshape(len(users), n_per_user)
