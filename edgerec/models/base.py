"""The interface every edgerec model implements.

A model scores (user, item) pairs for training, scores the whole catalogue for a batch of
users for evaluation and export, and exposes the user and item *representations* that
distillation compares between teacher and student. Models are built from a `ModelConfig`
through `edgerec.models.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from edgerec.models.config import ModelConfig


class Recommender(nn.Module, ABC):
    """Scores users against items. Subclasses set `loss` to the base loss they train with."""

    loss: str = "bpr"

    def __init__(self, config: ModelConfig, n_users: int, n_items: int):
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """[batch] scores of pairs `(users[b], items[b])`."""
        return self.score_representations(
            self.user_representation(users), self.item_representation(items)
        )

    @abstractmethod
    def score_representations(self, users: Tensor, items: Tensor) -> Tensor:
        """[batch] scores from [batch, d] user and item representations.

        Every score is a function of the two representations, so a training step that also
        distills looks each entity up once and shares the rows between both losses.
        """

    @abstractmethod
    def score_all(self, users: Tensor) -> Tensor:
        """[batch, n_items] scores of every item for each user."""

    @abstractmethod
    def user_representation(self, users: Tensor) -> Tensor:
        """[batch, d] what distillation compares on the user side."""

    @abstractmethod
    def item_representation(self, items: Tensor) -> Tensor:
        """[batch, d] what distillation compares on the item side."""

    @property
    def representation_dim(self) -> int:
        return int(self.user_representation(torch.zeros(1, dtype=torch.long)).shape[-1])

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def n_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())
