"""Splits: disjoint, complete, seeded, and leave-one-out takes each user's latest interactions."""

import numpy as np
import pytest

from edgerec.data.interactions import Interactions
from edgerec.data.splits import leave_one_out, ratio_split
from edgerec.errors import ConfigError


def _random_interactions(seed=0, n_users=50, n_items=80, with_time=True):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 25, n_users)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    ts = rng.permutation(len(users)).astype(np.float64) if with_time else None
    return Interactions(users, items, ts)


@pytest.mark.parametrize("split", [leave_one_out, ratio_split])
def test_every_interaction_in_exactly_one_split(split):
    data = _random_interactions()
    train, valid, test = split(data, seed=1)
    everything = np.concatenate([train, valid, test])
    assert len(everything) == len(data)
    assert len(np.unique(everything)) == len(data)


@pytest.mark.parametrize("split", [leave_one_out, ratio_split])
def test_same_seed_same_split_other_seed_other_split(split):
    data = _random_interactions(with_time=False)
    a, b = split(data, seed=3), split(data, seed=3)
    c = split(data, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_leave_one_out_takes_latest_then_second_latest():
    data = _random_interactions()
    train, valid, test = leave_one_out(data, seed=0)
    for u in np.unique(data.users):
        rows = np.nonzero(data.users == u)[0]
        by_time = rows[np.argsort(data.timestamps[rows])]
        if len(rows) >= 3:
            assert np.intersect1d(test, rows).tolist() == [by_time[-1]]
            assert np.intersect1d(valid, rows).tolist() == [by_time[-2]]
        else:  # too few to hold any out
            assert np.intersect1d(train, rows).size == len(rows)


def test_ratio_split_follows_recbole_rounding():
    # One user with 25 interactions: valid and test take floor(2.5) = 2 each, train the rest.
    data = Interactions(np.zeros(25, np.int64), np.arange(25), None)
    train, valid, test = ratio_split(data, seed=0)
    assert (len(train), len(valid), len(test)) == (21, 2, 2)


def test_ratio_split_rejects_ratios_not_summing_to_one():
    with pytest.raises(ConfigError, match="summing to 1"):
        ratio_split(_random_interactions(), seed=0, ratios=(0.8, 0.1, 0.2))
