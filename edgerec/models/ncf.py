"""NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017): a GMF tower (element-wise
product of embeddings) and an MLP tower (an MLP over concatenated embeddings), fused by one
linear layer into a logit. Trained with binary cross-entropy against sampled negatives.

The MLP's widths are 2*dim, dim, dim/2, ... for `layers` layers: with dim 64 and 3 layers,
128-64-32, RecBole's NeuMF default. The representation that distillation compares is the
concatenation of an entity's GMF and MLP embeddings (2*dim wide): everything the model knows
about a user or an item before the two meet.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgerec.models.base import Recommender
from edgerec.models.config import ModelConfig

# Bounds the [chunk, n_items, width] activations of a full-catalogue MLP pass (~64 MB fp32).
_SCORE_ALL_ELEMENTS = 16_000_000


def mlp_widths(dim: int, layers: int) -> list[int]:
    return [max(2 * dim >> i, 2) for i in range(layers)]


class NeuMF(Recommender):
    loss = "bce"

    def __init__(self, config: ModelConfig, n_users: int, n_items: int):
        super().__init__(config, n_users, n_items)
        d = config.dim
        self.gmf_user = nn.Embedding(n_users, d)
        self.gmf_item = nn.Embedding(n_items, d)
        self.mlp_user = nn.Embedding(n_users, d)
        self.mlp_item = nn.Embedding(n_items, d)

        widths = mlp_widths(d, config.layers)
        blocks: list[nn.Module] = []
        in_width = 2 * d
        for width in widths:
            blocks += [nn.Dropout(config.dropout), nn.Linear(in_width, width), nn.ReLU()]
            in_width = width
        self.mlp = nn.Sequential(*blocks)
        self.predict = nn.Linear(d + in_width, 1)

        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.01)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def first_layer(self) -> nn.Linear:
        return self.mlp[1]

    def score_representations(self, users: Tensor, items: Tensor) -> Tensor:
        d = self.config.dim  # a representation is [GMF embedding | MLP embedding]
        gmf = users[:, :d] * items[:, :d]  # [batch, d]
        mlp = self.mlp(torch.cat([users[:, d:], items[:, d:]], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def score_all(self, users: Tensor) -> Tensor:
        return self.score_all_from(users, self.item_side())

    def item_side(self) -> tuple[Tensor, Tensor]:
        """Every item-side quantity of a query, which is constant for a trained model.

        Returns the GMF item embeddings already multiplied by the GMF half of the output layer
        ([n_items, d]) and the item half of the first MLP layer ([n_items, h1]). Export folds
        these into constants so a query only computes the user side.
        """
        d = self.config.dim
        w_gmf = self.predict.weight[0, :d]  # [d]
        gmf_items = self.gmf_item.weight * w_gmf  # [n_items, d]
        first = self.first_layer
        mlp_items = self.mlp_item.weight @ first.weight[:, d:].T + first.bias  # [n_items, h1]
        return gmf_items, mlp_items

    def score_all_from(self, users: Tensor, item_side: tuple[Tensor, Tensor]) -> Tensor:
        gmf_items, mlp_items = item_side
        d = self.config.dim
        first = self.first_layer
        gmf = self.gmf_user(users) @ gmf_items.T  # [batch, n_items]
        user_part = self.mlp_user(users) @ first.weight[:, :d].T  # [batch, h1]

        chunk = max(1, _SCORE_ALL_ELEMENTS // (self.n_items * mlp_items.shape[1]))
        outs = []
        for start in range(0, users.shape[0], chunk):
            h = torch.relu(
                user_part[start : start + chunk, None, :] + mlp_items
            )  # [c, n_items, h1]
            h = self.mlp[3:](h)  # the rest of the tower (first Dropout, Linear, ReLU done above)
            outs.append(h @ self.predict.weight[0, d:])  # [c, n_items]
        return gmf + torch.cat(outs, dim=0) + self.predict.bias

    def user_representation(self, users: Tensor) -> Tensor:
        return torch.cat([self.gmf_user(users), self.mlp_user(users)], dim=-1)

    def item_representation(self, items: Tensor) -> Tensor:
        return torch.cat([self.gmf_item(items), self.mlp_item(items)], dim=-1)
