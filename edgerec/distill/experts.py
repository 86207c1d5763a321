"""Distillation experts and group assignment, shared by DE and HTD.

DE (Kang et al., "DE-RRD", CIKM 2020) regresses each teacher representation from the student's
through one of K small networks, the experts. An assignment network reads the teacher
representation and gives a distribution v over the experts; during training an expert is picked
by Gumbel-softmax, z = softmax((log v + g) / T), and the group-assignment loss is

    L_GA = sum_e || t_e - sum_k z_ek f_k(s_e) ||^2

with T annealed from near-uniform choices to hard ones. HTD (Kang et al., KDD 2021) reuses the
same networks: the argmax of v is an entity's group. Users and items have their own assignment
network and experts (`GroupExperts`, one per side), so they never share a group.

Cost: the experts are most of what HTD and DE compute. Their weights are stacked, so that while
the weights z are dense the K second layers and the weighted sum are one [n, K*h] x [K*h, d_t]
matrix product (two in the backward pass), and once annealing has made z one-hot each expert runs
only on the entities it was drawn for. The public reference runs the K experts one by one and
materialises their [n, d_teacher, K] outputs.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from edgerec.distill.base import BatchRepresentations, DistillLoss, check_reduction, reduce_terms
from edgerec.errors import ConfigError

logger = logging.getLogger(__name__)

# Below this share of non-zero (entity, expert) weights, each expert runs only on the entities
# it is mixed into; above it, one dense pass over all experts is faster. Per (entity, expert)
# pair the sparse pass costs about twice the dense one (one thread, CiteULike batch sizes), so
# they break even near one half. As the temperature falls the weights become one-hot (about a
# tenth of the way through the default schedule), and the sparse pass costs a few K-ths.
SPARSE_BELOW = 0.5

# Gumbel-softmax weights below this are set to exactly 0 (see `GroupExperts.gumbel_weights`).
MIN_WEIGHT = 1e-20


def annealed_temperature(epoch: int, n_epochs: int, start: float, end: float) -> float:
    """Geometric schedule from `start` at epoch 0 to `end` at the last epoch (0-based)."""
    if n_epochs < 1 or not 0 <= epoch < n_epochs:
        raise ConfigError(f"epoch {epoch} of {n_epochs}: expected 0 <= epoch < n_epochs")
    if not (start > 0 and end > 0):
        raise ConfigError(f"temperatures must be > 0, got start={start}, end={end}")

    if n_epochs == 1:
        return start
    return start * (end / start) ** (epoch / (n_epochs - 1))


class GroupExperts(nn.Module):
    """The assignment network and the K experts of one side (users or items).

    Expert k is Linear(d_student -> h) -> ReLU -> Linear(h -> d_teacher), h = (d_s + d_t) // 2,
    as in DE-RRD. The K experts' weights are stacked so that they run as a few large products.
    """

    def __init__(self, d_student: int, d_teacher: int, n_groups: int):
        super().__init__()
        hidden = (d_student + d_teacher) // 2
        self.assignment = nn.Linear(d_teacher, n_groups)
        self.w1 = nn.Parameter(torch.empty(n_groups, d_student, hidden))
        self.b1 = nn.Parameter(torch.empty(n_groups, hidden))
        self.w2 = nn.Parameter(torch.empty(n_groups, hidden, d_teacher))
        self.b2 = nn.Parameter(torch.empty(n_groups, d_teacher))
        self.reset_parameters()

    @property
    def n_groups(self) -> int:
        return self.w1.shape[0]

    def reset_parameters(self) -> None:
        # nn.Linear's default law, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases,
        # applied to each stacked expert.
        for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
            bound = weight.shape[1] ** -0.5
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def hard_groups(self, teacher: Tensor) -> Tensor:
        """[n] the group of each entity, the argmax of v; no gradient."""
        with torch.no_grad():
            return self.assignment(teacher).argmax(dim=1)

    def gumbel_weights(self, teacher: Tensor, temperature: float) -> Tensor:
        """[n, K] z = softmax((log v + g) / T), with gradient to the assignment network."""
        logits = self.assignment(teacher)  # [n, K]

        # log v = logits - logsumexp(logits): the shift cancels in the softmax, so the logits
        # stand in for log v without the reference's eps inside the log. -log(Exp(1)) is a
        # Gumbel(0, 1) sample; the clamp keeps a drawn 0 from becoming inf.
        exponential = torch.empty_like(logits).exponential_()
        gumbel = -exponential.clamp_min(torch.finfo(logits.dtype).tiny).log()
        weights = torch.softmax((logits + gumbel) / temperature, dim=1)  # [n, K]

        # At low temperatures the softmax underflows into subnormal numbers, which make every
        # product they enter (the experts' matrix products included) ten times slower on x86.
        # Below MIN_WEIGHT a weight changes nothing that float32 resolves, so it becomes 0.
        return torch.where(weights < MIN_WEIGHT, 0.0, weights)

    def reconstruct(self, student: Tensor, weights: Tensor, mode: str = "auto") -> Tensor:
        """[n, d_teacher] sum_k weights[:, k] f_k(student).

        `mode` "dense" runs every expert on every entity, "sparse" runs each expert on the
        entities with a non-zero weight for it (the same value: a zero weight adds nothing and,
        through the softmax, passes no gradient), "auto" picks the faster one.
        """
        if student.shape[0] == 0:
            return student.new_zeros(0, self.w2.shape[2])
        if mode == "auto":
            density = float(torch.count_nonzero(weights)) / max(weights.numel(), 1)
            mode = "sparse" if density < SPARSE_BELOW else "dense"
        if mode == "dense":
            return self._reconstruct_dense(student, weights)
        if mode == "sparse":
            return self._reconstruct_sparse(student, weights)
        raise ValueError(f"mode '{mode}' is unknown: expected auto, dense or sparse")

    def assignment_errors(self, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
        """[n] || t_e - sum_k z_ek f_k(s_e) ||^2 for each entity e."""
        weights = self.gumbel_weights(teacher, temperature)  # [n, K]
        return (teacher - self.reconstruct(student, weights)).square().sum(dim=1)

    def _reconstruct_dense(self, student: Tensor, weights: Tensor) -> Tensor:
        n = student.shape[0]
        k, _, hidden = self.w1.shape

        # The weights are >= 0, so z_k relu(W1_k s + b1_k) = relu(W1_k (z_k s) + z_k b1_k): scaling
        # the [K, n, d_s] inputs, a ones column standing for the bias, costs a fifth of scaling
        # the [n, K*h] hidden layer, forward and backward.
        scale = weights.T.unsqueeze(2)  # [K, n, 1]
        inputs = torch.cat([student.unsqueeze(0) * scale, scale], dim=2)  # [K, n, d_s + 1]
        w1 = torch.cat([self.w1, self.b1.unsqueeze(1)], dim=1)  # [K, d_s + 1, h]
        h = torch.relu(torch.bmm(inputs, w1))  # [K, n, h], expert k's hidden layer times z_k

        # The K second layers as one [n, K*h] x [K*h, d_t] product: the sum over the experts
        # happens inside it, and the [n, K, d_t] expert outputs never exist.
        h = h.transpose(0, 1).reshape(n, k * hidden)  # [n, K*h]
        return torch.addmm(weights @ self.b2, h, self.w2.reshape(k * hidden, -1))  # [n, d_t]

    def _reconstruct_sparse(self, student: Tensor, weights: Tensor) -> Tensor:
        rows, experts = torch.nonzero(weights, as_tuple=True)  # [pairs] each
        order = torch.argsort(experts, stable=True)
        rows, experts = rows[order], experts[order]
        counts = torch.bincount(experts, minlength=self.n_groups).tolist()

        # unbind, not w1[k]: the backward of K separate selections would build K zero-filled
        # gradients of the whole stack, which costs more than the experts themselves.
        experts_params = zip(
            self.w1.unbind(0), self.b1.unbind(0), self.w2.unbind(0), self.b2.unbind(0), strict=True
        )
        outputs = []
        for (w1, b1, w2, b2), inputs in zip(
            experts_params, student[rows].split(counts), strict=True
        ):
            if inputs.shape[0] > 0:
                h = torch.relu(torch.addmm(b1, inputs, w1))  # [n_k, h]
                outputs.append(torch.addmm(b2, h, w2))  # [n_k, d_t]
        weighted = torch.cat(outputs) * weights[rows, experts].unsqueeze(1)  # [pairs, d_t]

        out = student.new_zeros(student.shape[0], self.w2.shape[2])
        return out.index_add(0, rows, weighted)  # [n, d_t]


class ExpertDistillLoss(DistillLoss):
    """Base of the losses that own experts (DE, HTD): both sides' experts and the temperature."""

    def __init__(
        self,
        d_student: int,
        d_teacher: int,
        groups: int,
        reduction: str,
        temperature_start: float,
        temperature_end: float,
    ):
        super().__init__()
        if groups < 1:
            raise ConfigError(f"groups={groups}: expected an integer >= 1")
        self.reduction = check_reduction(reduction)
        self.temperature_start = temperature_start
        self.temperature_end = temperature_end
        self.temperature = annealed_temperature(0, 1, temperature_start, temperature_end)
        self.user_experts = GroupExperts(d_student, d_teacher, groups)
        self.item_experts = GroupExperts(d_student, d_teacher, groups)

    def on_epoch_start(self, epoch: int, n_epochs: int) -> None:
        self.temperature = annealed_temperature(
            epoch, n_epochs, self.temperature_start, self.temperature_end
        )
        logger.debug("epoch %d: Gumbel-softmax temperature %.3g", epoch, self.temperature)

    def group_assignment_loss(
        self, student: BatchRepresentations, teacher: BatchRepresentations
    ) -> Tensor:
        """L_GA over the batch's users and items, reduced (mean: per entity)."""
        errors = torch.cat(
            [
                self.user_experts.assignment_errors(student.users, teacher.users, self.temperature),
                self.item_experts.assignment_errors(student.items, teacher.items, self.temperature),
            ]
        )  # [n_users + n_items]
        return reduce_terms(errors.sum(), errors.numel(), self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, temperature={self.temperature:.3g}"
