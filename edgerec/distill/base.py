"""The interface every distillation loss implements.

A loss compares the representations that the student and the frozen teacher give to the same
batch entities: the batch's unique users and unique items (positives and negatives together).
Some losses own trainable parameters (the experts of HTD and DE); the training loop adds
`loss.parameters()` to the optimizer, and calls `on_epoch_start` before each epoch so that a loss
can anneal what it needs to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from edgerec.distill.config import REDUCTIONS
from edgerec.errors import ConfigError


@dataclass(frozen=True)
class BatchRepresentations:
    """One model's representations of a batch's unique users and unique items."""

    users: Tensor  # [n_users_in_batch, d]
    items: Tensor  # [n_items_in_batch, d]

    def detach(self) -> BatchRepresentations:
        return BatchRepresentations(self.users.detach(), self.items.detach())


class DistillLoss(nn.Module, ABC):
    """Maps (student, teacher) representations of one batch to a scalar, weights included."""

    @abstractmethod
    def forward(self, student: BatchRepresentations, teacher: BatchRepresentations) -> Tensor:
        """The weighted distillation loss of the batch, a scalar with gradient to the student."""

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        """Called with the 0-based epoch before it runs; losses without a schedule ignore it."""


def check_pair(student: BatchRepresentations, teacher: BatchRepresentations) -> None:
    """Raise ValueError unless student and teacher describe the same entities, one row each."""
    for side in ("users", "items"):
        s, t = getattr(student, side), getattr(teacher, side)
        if s.dim() != 2 or t.dim() != 2 or s.shape[0] != t.shape[0]:
            raise ValueError(
                f"student and teacher {side} must be [n, d] with the same n, "
                f"got {tuple(s.shape)} and {tuple(t.shape)}"
            )


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ConfigError(
            f"reduction '{reduction}' is unknown: expected one of {', '.join(REDUCTIONS)}"
        )
    return reduction


def reduce_terms(total: Tensor, n_terms: int, reduction: str) -> Tensor:
    """`total` as is for "sum", divided by its number of terms for "mean" (an empty sum is 0)."""
    if reduction == "mean":
        return total / max(n_terms, 1)
    return total


def zero_like(reference: Tensor) -> Tensor:
    """A scalar 0 on the device and in the dtype of `reference`."""
    return torch.zeros((), dtype=reference.dtype, device=reference.device)
