"""BPR matrix factorisation (Rendle et al., UAI 2009): a score is the dot product of a user's
and an item's embedding, trained with the pairwise BPR loss."""

from __future__ import annotations

from torch import Tensor, nn

from edgerec.models.base import Recommender
from edgerec.models.config import ModelConfig


class BPRMF(Recommender):
    loss = "bpr"

    def __init__(self, config: ModelConfig, n_users: int, n_items: int):
        super().__init__(config, n_users, n_items)
        self.user_embedding = nn.Embedding(n_users, config.dim)
        self.item_embedding = nn.Embedding(n_items, config.dim)
        nn.init.xavier_normal_(self.user_embedding.weight)
        nn.init.xavier_normal_(self.item_embedding.weight)

    def score_representations(self, users: Tensor, items: Tensor) -> Tensor:
        return (users * items).sum(-1)

    def score_all(self, users: Tensor) -> Tensor:
        return self.user_embedding(users) @ self.item_embedding.weight.T  # [batch, n_items]

    def user_representation(self, users: Tensor) -> Tensor:
        return self.user_embedding(users)

    def item_representation(self, items: Tensor) -> Tensor:
        return self.item_embedding(items)
