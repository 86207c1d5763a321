"""Distillation Experts (DE), the first half of Kang, Hwang, Kweon and Yu, "DE-RRD: A Knowledge
Distillation Framework for Recommender System", CIKM 2020.

The student's representation of each batch user and item is mapped by a Gumbel-selected expert
into the teacher's space and regressed onto the teacher's representation: the loss is
lambda * L_GA, with L_GA, the experts and the temperature schedule of
`edgerec.distill.experts` (the same code HTD uses). DE-RRD's second half, relaxed ranking
distillation, is not part of this loss.
"""

from __future__ import annotations

from torch import Tensor

from edgerec.distill.base import BatchRepresentations, check_pair
from edgerec.distill.experts import ExpertDistillLoss


class DELoss(ExpertDistillLoss):
    """lambda * L_GA; owns both sides' assignment networks and experts."""

    def __init__(
        self,
        d_student: int,
        d_teacher: int,
        groups: int = 30,
        lambda_: float = 1e-3,
        reduction: str = "sum",
        temperature_start: float = 1.0,
        temperature_end: float = 1e-10,
    ):
        super().__init__(
            d_student, d_teacher, groups, reduction, temperature_start, temperature_end
        )
        self.lambda_ = lambda_

    def forward(self, student: BatchRepresentations, teacher: BatchRepresentations) -> Tensor:
        check_pair(student, teacher)
        return self.lambda_ * self.group_assignment_loss(student, teacher.detach())

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}, " + super().extra_repr()
