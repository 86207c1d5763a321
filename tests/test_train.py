"""Training: negatives, loss going down, beating popularity, and resumption."""

import numpy as np
import pytest
import torch

from edgerec.data import DataConfig, SyntheticConfig, load_dataset
from edgerec.evaluate import evaluate
from edgerec.models.config import ModelConfig
from edgerec.models.popularity import Popularity
from edgerec.models.registry import build_model
from edgerec.train.config import TrainConfig
from edgerec.train.loop import fit
from edgerec.train.sampling import NegativeSampler

SMALL = DataConfig(synthetic=SyntheticConfig(n_users=200, n_items=300, mean_interactions=25))


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(SMALL)


def test_negatives_are_never_training_positives(dataset):
    train = dataset.train
    sampler = NegativeSampler(train.users, train.items, dataset.n_items)
    negatives = sampler.sample(train.users, 8, np.random.default_rng(0))  # [n, 8]
    positives = set(zip(train.users.tolist(), train.items.tolist(), strict=True))
    drawn = zip(np.repeat(train.users, 8).tolist(), negatives.reshape(-1).tolist(), strict=True)
    assert not any(pair in positives for pair in drawn)
    assert negatives.min() >= 0 and negatives.max() < dataset.n_items


def test_negatives_are_redrawn_each_call(dataset):
    sampler = NegativeSampler(dataset.train.users, dataset.train.items, dataset.n_items)
    rng = np.random.default_rng(0)
    first, second = (
        sampler.sample(dataset.train.users, 1, rng),
        sampler.sample(dataset.train.users, 1, rng),
    )
    assert (first != second).mean() > 0.9


@pytest.mark.parametrize("name", ["bpr", "ncf"])
def test_training_lowers_the_loss_and_beats_popularity(dataset, name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, dim=32, layers=2), dataset.n_users, dataset.n_items)
    result = fit(model, dataset, TrainConfig(epochs=30, lr=1e-2, batch_size=512, eval_every=5))

    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0]
    popularity = evaluate(Popularity(dataset.train.items, dataset.n_items).score_all, dataset)
    assert result.test["recall@20"] > 1.5 * popularity["recall@20"]


def test_bigger_model_beats_smaller_on_synthetic_data(dataset):
    """The synthetic data has rank-24 structure: dim 2 cannot hold it, dim 32 can."""
    scores = {}
    for dim in (2, 32):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="bpr", dim=dim), dataset.n_users, dataset.n_items)
        scores[dim] = fit(model, dataset, TrainConfig(epochs=30, lr=1e-2, batch_size=512)).test
    assert scores[32]["recall@20"] > 1.2 * scores[2]["recall@20"]


@pytest.mark.parametrize("name", ["bpr", "ncf"])
def test_resume_gives_the_same_result_as_an_unbroken_run(dataset, tmp_path, name):
    config = TrainConfig(epochs=6, lr=5e-3, batch_size=512, eval_every=2)

    def fresh():
        torch.manual_seed(1)
        return build_model(
            ModelConfig(name=name, dim=8, layers=1), dataset.n_users, dataset.n_items
        )

    unbroken = fit(fresh(), dataset, config, run_dir=tmp_path / "a")
    fit(fresh(), dataset, config, run_dir=tmp_path / "b", stop_after=4)  # "interrupted"
    resumed = fit(fresh(), dataset, config, run_dir=tmp_path / "b", resume=True)

    assert resumed.epochs == unbroken.epochs == 6
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in unbroken.history]
    for key, value in unbroken.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert resumed.test == unbroken.test


def test_early_stopping_keeps_the_best_epoch(dataset):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="bpr", dim=16), dataset.n_users, dataset.n_items)
    result = fit(model, dataset, TrainConfig(epochs=200, lr=5e-2, batch_size=512, patience=3))
    assert result.epochs < 200  # stopped early
    best = max(r["recall@20"] for r in result.history)
    assert result.valid["recall@20"] == pytest.approx(best)
