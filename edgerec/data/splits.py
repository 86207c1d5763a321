"""The field's two evaluation protocols.

- Leave-one-out: each user's latest interaction is the test item and the one before it the
  validation item (ties and missing timestamps are broken by a seeded shuffle). Users with fewer
  than three interactions keep everything in train.
- Ratio: each user's interactions are shuffled (seeded) and cut 8:1:1 by default, the protocol of
  RecBole's `RO` split: valid and test take floor(n * ratio) each, train the rest, so a user with
  too few interactions for a cut keeps them in train.

Both return index arrays into the interactions, so no interaction can land in two splits.
"""

from __future__ import annotations

import numpy as np

from edgerec.data.config import check_ratios
from edgerec.data.interactions import Interactions


def leave_one_out(data: Interactions, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(data)

    # Sort by user, then time, with a random tie-break: the last row of each user's run is
    # its latest interaction, the one before it the second latest.
    tie = rng.permutation(n)
    ts = data.timestamps if data.timestamps is not None else np.zeros(n)
    order = np.lexsort((tie, ts, data.users))
    sorted_users = data.users[order]

    # Position of each row within its user's run, counted from the end.
    run_end = np.r_[np.nonzero(np.diff(sorted_users))[0], n - 1]
    run_sizes = np.diff(np.r_[-1, run_end])
    ends = np.repeat(run_end, run_sizes)
    from_end = ends - np.arange(n)
    big_enough = np.repeat(run_sizes >= 3, run_sizes)

    test = order[(from_end == 0) & big_enough]
    valid = order[(from_end == 1) & big_enough]
    train = order[(from_end >= 2) | ~big_enough]
    return np.sort(train), np.sort(valid), np.sort(test)


def ratio_split(
    data: Interactions, seed: int, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_ratios(ratios)
    rng = np.random.default_rng(seed)
    n = len(data)

    order = np.lexsort((rng.permutation(n), data.users))
    sorted_users = data.users[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_users))[0] + 1]
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)  # position within the user's shuffled run

    # RecBole's rounding: valid and test get floor(total * ratio) each, train keeps the rest.
    total = np.repeat(sizes, sizes)
    n_valid = np.floor(total * ratios[1] + 1e-9).astype(np.int64)
    n_test = np.floor(total * ratios[2] + 1e-9).astype(np.int64)
    train_cut = total - n_valid - n_test
    valid_cut = total - n_test

    train = order[rank < train_cut]
    valid = order[(rank >= train_cut) & (rank < valid_cut)]
    test = order[rank >= valid_cut]
    return np.sort(train), np.sort(valid), np.sort(test)
