"""Hierarchical Topology Distillation (HTD), Kang, Hwang, Kweon and Yu, "Topology Distillation
for Recommender System", KDD 2021.

The teacher's representation space is split into groups: per side (users, items) K groups, an
entity's group being the argmax of the assignment network of `edgerec.distill.experts` over its
teacher representation (users and items never share a group). The student then matches the
teacher's topology at two levels, the paper's default design:

- entity level, within each group: sum over ordered pairs (a, b) of the same group of
  (cos(s_a, s_b) - cos(t_a, t_b))^2;
- group level, between entities and group prototypes: sum over the groups k present in the batch
  and the entities e of the same side of (cos(P^s_k, s_e) - cos(P^t_k, t_e))^2, where P^s_k and
  P^t_k are the means of group k's student and teacher representations.

L_TD is their sum and the loss is lambda * (alpha * L_TD + (1 - alpha) * L_GA), L_GA being DE's
group-assignment loss that trains the assignment networks and the experts. With reduction "mean"
each of the three terms is divided by its number of terms (same-group ordered pairs, entity-group
pairs, entities).

Two choices differ from the public reference code, deliberately:

1. All same-group pairs count. The reference drops the pairs whose teacher cosine is <= 0; we keep
   them, as FTD does, because a dissimilar pair is part of the topology too, and because then each
   group's term is a function of its Gram matrices: the linear form of
   `edgerec.distill.topology` applies group by group, O(E d^2), with no E x E mask.
2. The student prototypes P^s carry gradient. The reference computes them without, which leaves the
   gradient through the prototypes out (and makes its prototype-to-prototype variant train
   nothing); P^s is a function of the student representations, and its gradient costs one
   scatter. The teacher prototypes are constants either way.

As in FTD, `exact=False` (training) leaves out the teacher-only constant of the entity level,
which changes the value and not the gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from edgerec.distill.base import BatchRepresentations, check_pair, reduce_terms
from edgerec.distill.experts import ExpertDistillLoss
from edgerec.distill.topology import grouped_topology_gap, unit_rows


def entity_level_gap(
    student: Tensor, teacher: Tensor, groups: Tensor, *, exact: bool = True
) -> tuple[Tensor, int]:
    """Summed (cos(s_a, s_b) - cos(t_a, t_b))^2 over ordered same-group pairs, and their number."""
    gap = grouped_topology_gap(teacher, student, groups, exact=exact)
    n_pairs = int(torch.bincount(groups).square().sum())
    return gap, n_pairs


def group_level_gap(student: Tensor, teacher: Tensor, groups: Tensor) -> tuple[Tensor, int]:
    """Summed (cos(P^s_k, s_e) - cos(P^t_k, t_e))^2 over present groups k and entities e."""
    teacher = teacher.detach()
    _, members = torch.unique(groups, return_inverse=True)  # [n] in [0, n_present)

    student_prototypes = _group_means(student, members)  # [n_present, d_s]
    teacher_prototypes = _group_means(teacher, members)  # [n_present, d_t]

    student_cos = unit_rows(student) @ unit_rows(student_prototypes).T  # [n, n_present]
    teacher_cos = unit_rows(teacher) @ unit_rows(teacher_prototypes).T  # [n, n_present]
    return (student_cos - teacher_cos).square().sum(), student_cos.numel()


def _group_means(x: Tensor, members: Tensor) -> Tensor:
    """[n_groups, d] the mean row of each group; `members` numbers the groups 0..n_groups-1."""
    sizes = torch.bincount(members).unsqueeze(1).to(x.dtype)  # [n_groups, 1]
    return x.new_zeros(sizes.shape[0], x.shape[1]).index_add(0, members, x) / sizes


class HTDLoss(ExpertDistillLoss):
    """lambda * (alpha * L_TD + (1 - alpha) * L_GA); owns both sides' experts."""

    def __init__(
        self,
        d_student: int,
        d_teacher: int,
        groups: int = 30,
        lambda_: float = 1e-3,
        alpha: float = 0.5,
        reduction: str = "sum",
        temperature_start: float = 1.0,
        temperature_end: float = 1e-10,
        exact: bool = False,
    ):
        super().__init__(
            d_student, d_teacher, groups, reduction, temperature_start, temperature_end
        )
        self.lambda_ = lambda_
        self.alpha = alpha
        self.exact = exact

    def forward(self, student: BatchRepresentations, teacher: BatchRepresentations) -> Tensor:
        check_pair(student, teacher)
        teacher = teacher.detach()

        topology = self.topology_loss(student, teacher)
        assignment = self.group_assignment_loss(student, teacher)
        return self.lambda_ * (self.alpha * topology + (1 - self.alpha) * assignment)

    def hard_groups(self, teacher: BatchRepresentations) -> tuple[Tensor, Tensor]:
        """([n_users], [n_items]) the group of each user and item, each side's in [0, K)."""
        user_groups = self.user_experts.hard_groups(teacher.users.detach())
        item_groups = self.item_experts.hard_groups(teacher.items.detach())
        return user_groups, item_groups

    def topology_loss(self, student: BatchRepresentations, teacher: BatchRepresentations) -> Tensor:
        """L_TD, entity level plus group level, each reduced."""
        teacher = teacher.detach()
        user_groups, item_groups = self.hard_groups(teacher)
        sides = (
            (student.users, teacher.users, user_groups),
            (student.items, teacher.items, item_groups),
        )

        entity_gap, n_pairs, group_gap, n_links = 0, 0, 0, 0
        for student_side, teacher_side, groups in sides:
            gap, n = entity_level_gap(student_side, teacher_side, groups, exact=self.exact)
            entity_gap, n_pairs = entity_gap + gap, n_pairs + n
            gap, n = group_level_gap(student_side, teacher_side, groups)
            group_gap, n_links = group_gap + gap, n_links + n

        entity_level = reduce_terms(entity_gap, n_pairs, self.reduction)
        group_level = reduce_terms(group_gap, n_links, self.reduction)
        return entity_level + group_level

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, alpha={self.alpha}, exact={self.exact}, "
            + super().extra_repr()
        )
