"""Full Topology Distillation (FTD), Kang, Hwang, Kweon and Yu, "Topology Distillation for
Recommender System", KDD 2021.

The entities of a batch, its unique users and unique items together, form one topology: the
matrix of their pairwise cosine similarities. FTD makes the student's topology match the
teacher's,

    L_FTD = sum_{a, b} (cos(t_a, t_b) - cos(s_a, s_b))^2

over all E^2 ordered pairs (user-user, user-item and item-item), and the loss is lambda * L_FTD.
With reduction "sum" (the reference's) L_FTD grows with E^2, so lambda's effect depends on the
batch size; "mean" divides by E^2. The sum is computed in its linear form
(`edgerec.distill.topology`), O(E d^2) instead of O(E^2).

During training (`exact=False`) the teacher-only term ||X^T X||^2 of that form is skipped: it
costs E * d_teacher^2 per batch, more than the rest of the loss together (on a CiteULike batch,
one thread: 1.6 ms without it, 3.4 ms with it), and has no gradient. The gradient is the same,
but the value is L_FTD minus a batch constant, so it can be negative;
`ftd_topology_loss(..., exact=True)` returns L_FTD itself, for logging or evaluation.
"""

from __future__ import annotations

from torch import Tensor

from edgerec.distill.base import (
    BatchRepresentations,
    DistillLoss,
    check_pair,
    check_reduction,
    reduce_terms,
)
from edgerec.distill.topology import topology_gap


def ftd_topology_loss(
    student: BatchRepresentations,
    teacher: BatchRepresentations,
    *,
    reduction: str = "sum",
    exact: bool = True,
) -> Tensor:
    """L_FTD of the batch, unweighted; `exact=False` leaves out the teacher-only constant."""
    check_pair(student, teacher)
    check_reduction(reduction)

    gap = topology_gap([teacher.users, teacher.items], [student.users, student.items], exact=exact)
    n = student.users.shape[0] + student.items.shape[0]
    return reduce_terms(gap, n * n, reduction)


class FTDLoss(DistillLoss):
    """lambda * L_FTD; no parameters of its own."""

    def __init__(self, lambda_: float = 1e-3, reduction: str = "sum", exact: bool = False):
        super().__init__()
        self.lambda_ = lambda_
        self.reduction = check_reduction(reduction)
        self.exact = exact

    def forward(self, student: BatchRepresentations, teacher: BatchRepresentations) -> Tensor:
        loss = ftd_topology_loss(
            student, teacher.detach(), reduction=self.reduction, exact=self.exact
        )
        return self.lambda_ * loss

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}, reduction={self.reduction!r}, exact={self.exact}"
