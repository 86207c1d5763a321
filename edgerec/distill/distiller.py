"""A teacher and a distillation loss, packaged for the training loop.

The teacher is frozen: its representations of every user and item are computed once, without
gradient, and each batch only indexes them. That is exact (a frozen teacher's representations
do not change) and takes the teacher's forward pass out of the student's step. The teacher is
kept outside this module's parameters and state, so it is neither optimised nor checkpointed
with the student.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgerec.distill.base import BatchRepresentations, DistillLoss
from edgerec.models.base import Recommender


class Distiller(nn.Module):
    def __init__(self, teacher: Recommender, loss: DistillLoss):
        super().__init__()
        self.loss_fn = loss
        with torch.no_grad():
            teacher.eval()
            users = torch.arange(teacher.n_users)
            items = torch.arange(teacher.n_items)
            # Buffers, not parameters: they move with .to(device) and are never trained.
            self.register_buffer(
                "teacher_users", teacher.user_representation(users).detach(), persistent=False
            )  # [n_users, d_teacher]
            self.register_buffer(
                "teacher_items", teacher.item_representation(items).detach(), persistent=False
            )  # [n_items, d_teacher]

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        self.loss_fn.on_epoch_start(epoch, n_epochs)

    def loss(self, users: Tensor, items: Tensor, user_reps: Tensor, item_reps: Tensor) -> Tensor:
        """The weighted distillation loss of a batch's unique users and items, given the
        student's representations of them ([n_users_in_batch, d_s], [n_items_in_batch, d_s])."""
        teacher = BatchRepresentations(self.teacher_users[users], self.teacher_items[items])
        return self.loss_fn(BatchRepresentations(user_reps, item_reps), teacher)
