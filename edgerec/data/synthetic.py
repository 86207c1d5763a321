"""A built-in, seeded dataset whose structure is known, for the demo and the tests.

Each user and item has a latent vector of rank `rank`; a user's affinity for an item is their
dot product plus an item popularity term drawn from a power law, so that a few items are very
popular, as in real logs. Each user's items are drawn without replacement from the softmax of
those affinities (Gumbel top-k). Because the signal has rank `rank`, a model with embeddings
much smaller than it underfits, and a bigger one measurably beats a smaller one: the property
distillation experiments need. Timestamps follow the draw order, so leave-one-out works too.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgerec.errors import ConfigError


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 600
    n_items: int = 800
    rank: int = 24
    mean_interactions: int = 40
    popularity_exponent: float = 1.0
    # How sharp a user's taste is: higher means the latent signal dominates the sampling noise.
    signal: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "rank", "mean_interactions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"synthetic.{name} must be >= 1, got {getattr(self, name)}")
        if self.mean_interactions * 2 > self.n_items:
            raise ConfigError(
                f"synthetic.mean_interactions={self.mean_interactions} is too large for "
                f"n_items={self.n_items}: expected at most n_items / 2"
            )


def generate(config: SyntheticConfig):
    """A raw table (user, item, timestamp) shaped like a loader's output, a pandas DataFrame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(config.seed)
    users = rng.standard_normal((config.n_users, config.rank)) / np.sqrt(config.rank)
    items = rng.standard_normal((config.n_items, config.rank))
    # Zipf-like popularity: the item of popularity rank r gets weight r^-exponent.
    ranks = rng.permutation(config.n_items) + 1
    popularity = -config.popularity_exponent * np.log(ranks)

    # Each user gets between 5 and 2 * mean interactions (geometric-ish spread, as in real logs).
    counts = np.clip(rng.poisson(config.mean_interactions, config.n_users), 5, None)
    counts = np.minimum(counts, config.n_items // 2)
    max_count = int(counts.max())

    rows_u, rows_i = [], []
    chunk = max(1, 4_000_000 // config.n_items)  # bounds the [chunk, n_items] score block
    for start in range(0, config.n_users, chunk):
        stop = min(start + chunk, config.n_users)
        logits = config.signal * (users[start:stop] @ items.T) + popularity  # [chunk, n_items]
        noisy = logits + rng.gumbel(size=logits.shape)
        top = np.argpartition(-noisy, max_count - 1, axis=1)[:, :max_count]
        # argpartition leaves the top block unordered: order it so the first n are the n best.
        top_scores = np.take_along_axis(noisy, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_scores, axis=1), axis=1)
        for offset, row in enumerate(top):
            n = counts[start + offset]
            rows_u.append(np.full(n, start + offset))
            rows_i.append(row[:n])

    user_col = np.concatenate(rows_u)
    item_col = np.concatenate(rows_i)
    # Timestamps in draw order within each user, so "latest" is well defined.
    timestamps = np.arange(len(user_col), dtype=np.float64)
    return pd.DataFrame(
        {"user": user_col.astype(str), "item": item_col.astype(str), "timestamp": timestamps}
    )
