"""The cosine topology of a set of representations, and how far apart two of them are.

Topology Distillation (Kang et al., KDD 2021) compares the pairwise cosine similarities of the
same entities in the teacher's and the student's spaces. With X and Y the row-normalised teacher
and student matrices of n entities, the summed squared gap between the two topologies is

    sum_ab ((X X^T)_ab - (Y Y^T)_ab)^2 = ||X^T X||^2 - 2 ||X^T Y||^2 + ||Y^T Y||^2   (Frobenius)

which costs O(n d^2) instead of the O(n^2) of the similarity matrices. The first term involves
the teacher only: it is a constant for the student, so training may skip it (`exact=False`),
leaving the gradient unchanged and the value shifted by that constant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from edgerec.distill.base import zero_like

# Smallest norm a representation is divided by: a zero vector stays zero (cosine 0 with every
# entity, itself included) instead of becoming NaN, and its gradient stays finite.
NORM_EPS = 1e-12

# Groups are padded to the largest one while that multiplies the rows by at most this factor.
PADDING_LIMIT = 4


def unit_rows(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1, eps=NORM_EPS)


def topology_gap(teacher: Sequence[Tensor], student: Sequence[Tensor], *, exact: bool) -> Tensor:
    """Summed squared gap between the cosine topologies of the teacher and student rows.

    Block b of `teacher` and of `student` holds the same entities, `[..., n_b, d]`; the blocks
    (users and items, say) make one topology without being concatenated, as every term of the
    linear form is a sum over rows. Leading dimensions are separate topologies, summed over.
    With `exact=False` the teacher-only term is left out (see the module docstring).
    """
    student_gram, cross, teacher_gram = 0, 0, 0
    for teacher_block, student_block in zip(teacher, student, strict=True):
        teacher_block = teacher_block.detach()
        student_unit = unit_rows(student_block)  # [..., n_b, d_s]
        with torch.no_grad():
            inverse_norms = 1 / torch.linalg.vector_norm(teacher_block, dim=-1, keepdim=True)
            inverse_norms = inverse_norms.clamp_max(1 / NORM_EPS)  # [..., n_b, 1]

        # X^T Y = T^T (Y / |t|): the teacher's norms scale the narrow student matrix, so the
        # wide teacher matrix is never normalised (or copied) for the training value.
        cross = cross + teacher_block.mT @ (student_unit * inverse_norms)  # [..., d_t, d_s]
        student_gram = student_gram + student_unit.mT @ student_unit  # [..., d_s, d_s]
        if exact:
            teacher_unit = teacher_block * inverse_norms
            teacher_gram = teacher_gram + teacher_unit.mT @ teacher_unit  # [..., d_t, d_t]

    # Limitation: in float32 a gap near zero carries an absolute error of about 1e-7 of the
    # terms (each of order n^2 / d), because it is their difference after the sums; compare
    # exact values in float64 where a small gap matters.
    gap = student_gram.square().sum() - 2 * cross.square().sum()
    if exact:
        gap = gap + teacher_gram.square().sum()
    return gap


def grouped_topology_gap(
    teacher: Tensor, student: Tensor, groups: Tensor, *, exact: bool
) -> Tensor:
    """`topology_gap` summed over the groups: only pairs within the same group count.

    `teacher` and `student` are `[n, d]`, `groups` is `[n]`, a group index per entity. Sorted by
    group, the groups are padded with zero rows (which add nothing to a Gram matrix) to one
    `[n_groups, largest, d]` batch, so that the work is a few batched products. When one group is
    much larger than the others the padding would cost more than it saves; then the groups are
    slices of the sorted rows, taken one by one.
    """
    order = torch.argsort(groups, stable=True)
    _, members = torch.unique(groups[order], return_inverse=True)  # [n] in [0, n_present)
    sizes = torch.bincount(members)  # [n_present]
    n, n_present, largest = groups.shape[0], sizes.shape[0], int(sizes.max())
    teacher, student = teacher.detach()[order], student[order]

    if n_present * largest <= PADDING_LIMIT * n:
        # Row i of the sorted order is row (i - first row of its group) of its group's block.
        firsts = torch.cumsum(sizes, 0) - sizes  # [n_present]
        slots = (members, torch.arange(n, device=groups.device) - firsts[members])
        teacher_blocks = teacher.new_zeros(n_present, largest, teacher.shape[1])
        student_blocks = student.new_zeros(n_present, largest, student.shape[1])
        teacher_blocks = teacher_blocks.index_put(slots, teacher)  # [G, largest, d_t]
        student_blocks = student_blocks.index_put(slots, student)  # [G, largest, d_s]
        return topology_gap([teacher_blocks], [student_blocks], exact=exact)

    gap = zero_like(student)
    split = sizes.tolist()
    for teacher_group, student_group in zip(
        teacher.split(split), student.split(split), strict=True
    ):
        gap = gap + topology_gap([teacher_group], [student_group], exact=exact)
    return gap
