"""The contract every model in the registry keeps, on tiny variants."""

import pytest
import torch

from edgerec.errors import ConfigError
from edgerec.models.config import ModelConfig
from edgerec.models.registry import build_model, model_names

N_USERS, N_ITEMS = 13, 21


@pytest.fixture(params=model_names())
def model(request):
    torch.manual_seed(0)
    return build_model(ModelConfig(name=request.param), N_USERS, N_ITEMS).eval()


def test_score_all_agrees_with_pairwise_scores(model):
    users = torch.tensor([0, 5, 12])
    full = model.score_all(users)  # [3, n_items]
    assert full.shape == (3, N_ITEMS)
    pairs = model.score(users.repeat_interleave(N_ITEMS), torch.arange(N_ITEMS).repeat(3))
    torch.testing.assert_close(full, pairs.view(3, N_ITEMS), rtol=1e-5, atol=1e-5)


def test_representations_have_one_width_for_users_and_items(model):
    u = model.user_representation(torch.tensor([1, 2]))
    i = model.item_representation(torch.tensor([3, 4, 5]))
    assert u.shape == (2, model.representation_dim)
    assert i.shape == (3, model.representation_dim)


def test_sizes_count_every_parameter(model):
    expected = sum(p.numel() for p in model.parameters())
    assert model.n_params() == expected > 0
    assert model.n_bytes() == 4 * expected  # fp32


def test_ncf_tower_follows_the_configured_depth():
    ncf = build_model(ModelConfig(name="ncf", dim=64, layers=3), N_USERS, N_ITEMS)
    widths = [m.out_features for m in ncf.mlp if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 64, 32]  # RecBole's NeuMF default for embedding 64


def test_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="model 'svd' is unknown: expected one of bpr, ncf"):
        build_model(ModelConfig(name="svd"), N_USERS, N_ITEMS)


@pytest.mark.parametrize("field,value", [("dim", 0), ("layers", 0), ("dropout", 1.5)])
def test_model_config_rejects_out_of_range_sizes(field, value):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**{field: value})
