"""The distillation losses (FTD, HTD, DE) against direct computations on small synthetic data."""

from __future__ import annotations

import math
import re

import pytest
import torch

from edgerec.distill.base import BatchRepresentations
from edgerec.distill.config import DistillConfig
from edgerec.distill.de import DELoss
from edgerec.distill.experts import MIN_WEIGHT, GroupExperts, annealed_temperature
from edgerec.distill.ftd import FTDLoss, ftd_topology_loss
from edgerec.distill.htd import HTDLoss, entity_level_gap, group_level_gap
from edgerec.distill.registry import Method, build_distill_loss
from edgerec.distill.topology import grouped_topology_gap
from edgerec.errors import ConfigError

F64 = torch.float64


def reps(n_users: int, n_items: int, d: int, seed: int, dtype=F64) -> BatchRepresentations:
    g = torch.Generator().manual_seed(seed)
    return BatchRepresentations(
        torch.randn(n_users, d, generator=g, dtype=dtype),
        torch.randn(n_items, d, generator=g, dtype=dtype),
    )


def leaf(r: BatchRepresentations) -> BatchRepresentations:
    return BatchRepresentations(r.users.clone().requires_grad_(), r.items.clone().requires_grad_())


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to norm 1; a zero row stays zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def direct_gap(teacher: torch.Tensor, student: torch.Tensor, same: torch.Tensor | None = None):
    """sum_ab (cos t_ab - cos s_ab)^2 over the pairs where `same` holds, from the E x E matrices."""
    teacher_cos = unit_rows(teacher) @ unit_rows(teacher).T
    student_cos = unit_rows(student) @ unit_rows(student).T
    squared = (teacher_cos - student_cos).square()
    return squared.sum() if same is None else squared[same].sum()


def all_entities(r: BatchRepresentations) -> torch.Tensor:
    return torch.cat([r.users, r.items])


# FTD


def test_ftd_linear_form_equals_direct_pairwise_form():
    student, teacher = reps(7, 11, 5, seed=0), reps(7, 11, 9, seed=1)

    fast = ftd_topology_loss(student, teacher, exact=True)
    direct = direct_gap(all_entities(teacher), all_entities(student))

    assert fast.item() == pytest.approx(direct.item(), rel=1e-10)
    assert direct.item() > 1.0


def test_ftd_training_value_differs_from_exact_by_the_teacher_constant_only():
    student, teacher = leaf(reps(6, 8, 4, seed=2)), reps(6, 8, 10, seed=3)

    exact = ftd_topology_loss(student, teacher, exact=True)
    training = ftd_topology_loss(student, teacher, exact=False)
    teacher_unit = unit_rows(all_entities(teacher))
    constant = (teacher_unit.T @ teacher_unit).square().sum()
    (grad_exact,) = torch.autograd.grad(exact, student.users)
    (grad_training,) = torch.autograd.grad(training, student.users)

    assert (exact - training).item() == pytest.approx(constant.item(), rel=1e-10)
    torch.testing.assert_close(grad_exact, grad_training)


def test_ftd_vanishes_for_a_rotated_and_rescaled_teacher():
    teacher = reps(9, 13, 6, seed=4)
    g = torch.Generator().manual_seed(5)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=F64))
    scale_u = torch.rand(9, 1, generator=g, dtype=F64) * 5 + 0.1
    scale_i = torch.rand(13, 1, generator=g, dtype=F64) * 5 + 0.1
    rotated = BatchRepresentations(
        teacher.users @ rotation * scale_u, teacher.items @ rotation * scale_i
    )

    assert ftd_topology_loss(rotated, teacher).item() == pytest.approx(0.0, abs=1e-9)
    assert ftd_topology_loss(reps(9, 13, 6, seed=6), teacher).item() > 1.0


def test_ftd_reductions_and_lambda():
    student, teacher = reps(5, 7, 3, seed=7), reps(5, 7, 8, seed=8)
    n = 12

    summed = FTDLoss(lambda_=0.3, reduction="sum", exact=True)(student, teacher)
    mean = FTDLoss(lambda_=0.3, reduction="mean", exact=True)(student, teacher)

    direct = direct_gap(all_entities(teacher), all_entities(student))
    assert summed.item() == pytest.approx(0.3 * direct.item(), rel=1e-10)
    assert mean.item() == pytest.approx(summed.item() / n**2, rel=1e-10)


def test_ftd_survives_a_zero_representation():
    student, teacher = leaf(reps(4, 5, 3, seed=9)), reps(4, 5, 6, seed=10)
    with torch.no_grad():
        student.users[0] = 0.0

    loss = ftd_topology_loss(student, teacher)
    loss.backward()

    # A zero vector has cosine 0 with everything, itself included.
    zeroed = BatchRepresentations(student.users.detach(), student.items.detach())
    assert loss.item() == pytest.approx(
        direct_gap(all_entities(teacher), all_entities(zeroed)).item(), rel=1e-10
    )
    assert torch.isfinite(student.users.grad).all() and torch.isfinite(student.items.grad).all()


def test_ftd_training_pulls_the_student_topology_towards_the_teacher():
    torch.manual_seed(11)
    teacher = reps(20, 30, 16, seed=12, dtype=torch.float32)
    student = leaf(reps(20, 30, 4, seed=13, dtype=torch.float32))
    loss_fn = FTDLoss(lambda_=1.0, reduction="mean")
    optimizer = torch.optim.Adam([student.users, student.items], lr=0.05)

    before = ftd_topology_loss(student, teacher, reduction="mean").item()
    for _ in range(100):
        optimizer.zero_grad()
        loss_fn(student, teacher).backward()
        optimizer.step()
    after = ftd_topology_loss(student, teacher, reduction="mean").item()

    assert after < 0.5 * before


# HTD: groups and topology


def test_htd_hard_groups_partition_each_side():
    torch.manual_seed(14)
    loss = HTDLoss(d_student=3, d_teacher=6, groups=4).double()
    teacher = reps(25, 40, 6, seed=15)

    user_groups, item_groups = loss.hard_groups(teacher)

    for groups, side, experts in (
        (user_groups, teacher.users, loss.user_experts),
        (item_groups, teacher.items, loss.item_experts),
    ):
        assert groups.shape == (side.shape[0],) and groups.dtype == torch.long
        assert 0 <= int(groups.min()) and int(groups.max()) < 4
        assert torch.bincount(groups, minlength=4).sum().item() == side.shape[0]
        assert len(torch.unique(groups)) > 1  # a real partition, not everything in one group
        expected = torch.softmax(experts.assignment(side), dim=1).argmax(dim=1)
        torch.testing.assert_close(groups, expected)
    assert not user_groups.requires_grad and not item_groups.requires_grad


def test_htd_topology_never_pairs_a_user_with_an_item():
    torch.manual_seed(16)
    loss = HTDLoss(d_student=3, d_teacher=6, groups=3, exact=True).double()
    student, teacher = reps(10, 14, 3, seed=17), reps(10, 14, 6, seed=18)
    user_groups, item_groups = loss.hard_groups(teacher)

    # One label per (side, group): a user's group k and an item's group k are different groups.
    labels = torch.cat([user_groups, item_groups + 3])
    same = labels[:, None] == labels[None, :]
    entity = direct_gap(all_entities(teacher), all_entities(student), same)
    group = sum(
        group_level_gap(s, t, g)[0]
        for s, t, g in (
            (student.users, teacher.users, user_groups),
            (student.items, teacher.items, item_groups),
        )
    )

    assert loss.topology_loss(student, teacher).item() == pytest.approx(
        (entity + group).item(), rel=1e-10
    )


@pytest.mark.parametrize(
    "sizes",
    [
        [5, 6, 4, 5],  # balanced: the groups are padded into one batch
        [30, 1, 1, 2, 1, 1, 1],  # one large group: the groups are taken one by one
        [12],  # a single group is the whole topology
    ],
)
def test_entity_level_fast_form_equals_masked_pairwise_form(sizes):
    g = torch.Generator().manual_seed(19)
    groups = torch.cat([torch.full((size,), k) for k, size in enumerate(sizes)])
    groups = groups[torch.randperm(len(groups), generator=g)]
    student = torch.randn(len(groups), 3, generator=g, dtype=F64)
    teacher = torch.randn(len(groups), 7, generator=g, dtype=F64)

    fast, n_pairs = entity_level_gap(student, teacher, groups, exact=True)
    same = groups[:, None] == groups[None, :]

    assert fast.item() == pytest.approx(direct_gap(teacher, student, same).item(), rel=1e-10)
    assert n_pairs == sum(size**2 for size in sizes) == int(same.sum())


def test_grouped_gap_skips_the_teacher_constant_of_each_group_in_training():
    g = torch.Generator().manual_seed(20)
    groups = torch.tensor([0, 2, 2, 0, 2, 5, 5])
    teacher = unit_rows(torch.randn(7, 6, generator=g, dtype=F64))
    student = unit_rows(torch.randn(7, 2, generator=g, dtype=F64))

    exact = grouped_topology_gap(teacher, student, groups, exact=True)
    training = grouped_topology_gap(teacher, student, groups, exact=False)
    same = groups[:, None] == groups[None, :]
    constant = (teacher @ teacher.T).square()[same].sum()

    assert (exact - training).item() == pytest.approx(constant.item(), rel=1e-10)


def test_group_level_gap_equals_a_loop_over_prototypes():
    g = torch.Generator().manual_seed(21)
    groups = torch.tensor([3, 0, 3, 3, 7, 0, 7, 3])  # groups 1, 2, 4, 5, 6 absent
    student = torch.randn(8, 3, generator=g, dtype=F64)
    teacher = torch.randn(8, 5, generator=g, dtype=F64)

    gap, n_terms = group_level_gap(student, teacher, groups)

    expected = 0.0
    for k in (0, 3, 7):
        proto_s, proto_t = student[groups == k].mean(0), teacher[groups == k].mean(0)
        for e in range(8):
            cos_s = torch.cosine_similarity(proto_s, student[e], dim=0)
            cos_t = torch.cosine_similarity(proto_t, teacher[e], dim=0)
            expected += (cos_s - cos_t).item() ** 2
    assert gap.item() == pytest.approx(expected, rel=1e-10)
    assert n_terms == 8 * 3


def test_topology_gradients_are_the_true_gradients():
    # Finite differences see the student prototypes' dependence on every member of the group;
    # prototypes computed without gradient would fail this check.
    g = torch.Generator().manual_seed(44)
    groups = torch.tensor([1, 0, 1, 1, 0, 2])
    student = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    teacher = torch.randn(6, 5, generator=g, dtype=F64)
    other = BatchRepresentations(teacher[:2], teacher[2:])

    def ftd(s: torch.Tensor) -> torch.Tensor:
        return ftd_topology_loss(BatchRepresentations(s[:2], s[2:]), other, exact=False)

    assert torch.autograd.gradcheck(lambda s: group_level_gap(s, teacher, groups)[0], student)
    assert torch.autograd.gradcheck(
        lambda s: entity_level_gap(s, teacher, groups, exact=False)[0], student
    )
    assert torch.autograd.gradcheck(ftd, student)


# HTD and DE: experts and temperature


def test_annealed_temperature_schedule():
    temps = [annealed_temperature(e, 10, 1.0, 1e-10) for e in range(10)]

    assert temps[0] == 1.0
    assert temps[-1] == pytest.approx(1e-10, rel=1e-9)
    assert all(a > b for a, b in zip(temps, temps[1:], strict=False))
    # Geometric: the same ratio from one epoch to the next.
    assert temps[1] / temps[0] == pytest.approx(temps[5] / temps[4], rel=1e-9)
    assert annealed_temperature(0, 1, 2.0, 1e-3) == 2.0


@pytest.mark.parametrize("epoch, n_epochs", [(-1, 5), (5, 5), (0, 0)])
def test_annealed_temperature_rejects_epochs_outside_the_run(epoch, n_epochs):
    with pytest.raises(ConfigError, match="epoch"):
        annealed_temperature(epoch, n_epochs, 1.0, 0.1)


def test_on_epoch_start_anneals_the_loss():
    loss = DELoss(d_student=2, d_teacher=4, groups=3, temperature_start=2.0, temperature_end=0.02)

    loss.on_epoch_start(0, 3)
    first = loss.temperature
    loss.on_epoch_start(2, 3)

    assert first == 2.0
    assert loss.temperature == pytest.approx(0.02)


def test_gumbel_weights_are_distributions_and_become_one_hot_when_cold():
    torch.manual_seed(22)
    experts = GroupExperts(d_student=2, d_teacher=5, n_groups=6).double()
    teacher = torch.randn(50, 5, dtype=F64)

    warm = experts.gumbel_weights(teacher, 1.0)
    cold = experts.gumbel_weights(teacher, 1e-10)

    torch.testing.assert_close(warm.sum(1), torch.ones(50, dtype=F64))
    assert (warm > 0).float().mean() > 0.9
    assert torch.equal((cold > 0).sum(1), torch.ones(50, dtype=torch.long))
    torch.testing.assert_close(cold.sum(1), torch.ones(50, dtype=F64))


def test_gumbel_weights_hold_no_vanishing_values():
    torch.manual_seed(45)
    experts = GroupExperts(d_student=2, d_teacher=5, n_groups=30)
    teacher = torch.randn(400, 5) * 10

    torch.manual_seed(46)
    weights = experts.gumbel_weights(teacher, 0.05)
    torch.manual_seed(46)
    logits = experts.assignment(teacher)
    raw = torch.softmax((logits - torch.empty_like(logits).exponential_().log()) / 0.05, dim=1)

    # The softmax alone leaves weights far below float32's resolution (subnormals among them).
    assert ((raw > 0) & (raw < MIN_WEIGHT)).any()
    assert not ((weights > 0) & (weights < MIN_WEIGHT)).any()
    torch.testing.assert_close(weights[raw >= MIN_WEIGHT], raw[raw >= MIN_WEIGHT])


@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_sparse_experts_equal_dense_experts(temperature):
    torch.manual_seed(23)
    experts = GroupExperts(d_student=3, d_teacher=7, n_groups=5).double()
    student = torch.randn(40, 3, dtype=F64, requires_grad=True)
    weights = experts.gumbel_weights(torch.randn(40, 7, dtype=F64), temperature)

    results = []
    for mode in ("dense", "sparse"):
        out = experts.reconstruct(student, weights, mode)
        params = [
            student,
            experts.w1,
            experts.b1,
            experts.w2,
            experts.b2,
            experts.assignment.weight,
        ]
        grads = torch.autograd.grad(out.square().sum(), params, retain_graph=True)
        results.append((out, grads))

    (dense, dense_grads), (sparse, sparse_grads) = results
    torch.testing.assert_close(dense, sparse)
    for a, b in zip(dense_grads, sparse_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_reconstruct_mixes_the_experts_by_their_weights():
    torch.manual_seed(24)
    experts = GroupExperts(d_student=3, d_teacher=4, n_groups=3).double()
    student = torch.randn(6, 3, dtype=F64)
    weights = torch.softmax(torch.randn(6, 3, dtype=F64), dim=1)

    expected = sum(
        weights[:, k : k + 1]
        * (torch.relu(student @ experts.w1[k] + experts.b1[k]) @ experts.w2[k] + experts.b2[k])
        for k in range(3)
    )

    torch.testing.assert_close(experts.reconstruct(student, weights, "dense"), expected)
    torch.testing.assert_close(experts.reconstruct(student, weights, "sparse"), expected)


def test_experts_have_the_de_rrd_shape():
    experts = GroupExperts(d_student=20, d_teacher=200, n_groups=30)

    assert experts.w1.shape == (30, 20, 110) and experts.w2.shape == (30, 110, 200)
    assert experts.assignment.in_features == 200 and experts.assignment.out_features == 30


# All losses: gradient flow, weights and reductions


@pytest.mark.parametrize("method", ["ftd", "htd", "de"])
def test_teacher_gets_no_gradient_and_student_and_experts_do(method):
    torch.manual_seed(25)
    config = DistillConfig(method=method, groups=3, lambda_=1.0)
    loss = build_distill_loss(config, d_student=3, d_teacher=6)
    student = leaf(reps(8, 12, 3, seed=26, dtype=torch.float32))
    teacher = leaf(reps(8, 12, 6, seed=27, dtype=torch.float32))

    loss(student, teacher).backward()

    for tensor in (teacher.users, teacher.items):
        assert tensor.grad is None or not tensor.grad.any()
    for tensor in (student.users, student.items):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0
    if method != "ftd":
        for experts in (loss.user_experts, loss.item_experts):
            for p in (experts.w1, experts.w2, experts.assignment.weight):
                assert p.grad is not None and p.grad.abs().sum() > 0


def test_htd_combines_topology_and_assignment_with_lambda_and_alpha():
    torch.manual_seed(28)
    loss = HTDLoss(d_student=3, d_teacher=6, groups=3, lambda_=0.2, alpha=0.3).double()
    student, teacher = reps(9, 11, 3, seed=29), reps(9, 11, 6, seed=30)

    torch.manual_seed(31)
    total = loss(student, teacher)
    topology = loss.topology_loss(student, teacher)
    torch.manual_seed(31)  # the same Gumbel noise
    assignment = loss.group_assignment_loss(student, teacher)

    expected = 0.2 * (0.3 * topology + 0.7 * assignment)
    assert total.item() == pytest.approx(expected.item(), rel=1e-10)


def test_de_is_lambda_times_the_assignment_error():
    torch.manual_seed(32)
    loss = DELoss(d_student=3, d_teacher=6, groups=4, lambda_=0.5).double()
    loss.on_epoch_start(4, 5)  # cold: one expert per entity
    student, teacher = reps(5, 6, 3, seed=33), reps(5, 6, 6, seed=34)

    torch.manual_seed(35)
    total = loss(student, teacher)
    torch.manual_seed(35)  # the same Gumbel noise, drawn users first
    user_weights = loss.user_experts.gumbel_weights(teacher.users, loss.temperature)
    item_weights = loss.item_experts.gumbel_weights(teacher.items, loss.temperature)

    # With one-hot weights the reconstruction is the chosen expert's output.
    expected = 0.0
    sides = (
        (student.users, teacher.users, user_weights, loss.user_experts),
        (student.items, teacher.items, item_weights, loss.item_experts),
    )
    for s, t, weights, experts in sides:
        assert torch.equal((weights > 0).sum(1), torch.ones(len(s), dtype=torch.long))
        for e, k in enumerate(weights.argmax(1).tolist()):
            hidden = torch.relu(s[e] @ experts.w1[k] + experts.b1[k])
            expected += (t[e] - (hidden @ experts.w2[k] + experts.b2[k])).square().sum().item()
    assert total.item() == pytest.approx(0.5 * expected, rel=1e-9)


def test_htd_and_de_reduction_mean_divides_each_term_by_its_count():
    torch.manual_seed(36)
    summed = HTDLoss(d_student=3, d_teacher=6, groups=3, reduction="sum", exact=True).double()
    mean = HTDLoss(d_student=3, d_teacher=6, groups=3, reduction="mean", exact=True).double()
    mean.load_state_dict(summed.state_dict())
    student, teacher = reps(9, 13, 3, seed=37), reps(9, 13, 6, seed=38)

    torch.manual_seed(39)
    ga_sum = summed.group_assignment_loss(student, teacher)
    torch.manual_seed(39)
    ga_mean = mean.group_assignment_loss(student, teacher)
    assert ga_mean.item() == pytest.approx(ga_sum.item() / (9 + 13), rel=1e-10)

    user_groups, item_groups = summed.hard_groups(teacher)
    n_pairs = n_links = 0
    entity = group = 0.0
    for s, t, g in (
        (student.users, teacher.users, user_groups),
        (student.items, teacher.items, item_groups),
    ):
        gap, count = entity_level_gap(s, t, g)
        entity, n_pairs = entity + gap.item(), n_pairs + count
        gap, count = group_level_gap(s, t, g)
        group, n_links = group + gap.item(), n_links + count
    assert summed.topology_loss(student, teacher).item() == pytest.approx(entity + group, rel=1e-10)
    assert mean.topology_loss(student, teacher).item() == pytest.approx(
        entity / n_pairs + group / n_links, rel=1e-10
    )


def test_de_training_lowers_the_assignment_error():
    torch.manual_seed(40)
    teacher = reps(16, 24, 8, seed=41, dtype=torch.float32)
    student = leaf(reps(16, 24, 4, seed=42, dtype=torch.float32))
    loss = DELoss(d_student=4, d_teacher=8, groups=3, lambda_=1.0, reduction="mean")
    optimizer = torch.optim.Adam([student.users, student.items, *loss.parameters()], lr=0.02)

    def error() -> float:
        torch.manual_seed(43)
        with torch.no_grad():
            return loss(student, teacher).item()

    before = error()
    for _ in range(60):
        optimizer.zero_grad()
        loss(student, teacher).backward()
        optimizer.step()

    assert error() < 0.5 * before


# Config and registry


def test_registry_builds_each_method():
    assert build_distill_loss(DistillConfig(method="none"), 4, 8) is None
    assert isinstance(build_distill_loss(DistillConfig(method="ftd"), 4, 8), FTDLoss)
    htd = build_distill_loss(DistillConfig(method="htd", groups=5, alpha=0.2), 4, 8)
    de = build_distill_loss(DistillConfig(method=Method.de, groups=5), 4, 8)

    assert isinstance(htd, HTDLoss) and htd.alpha == 0.2 and htd.user_experts.n_groups == 5
    assert isinstance(de, DELoss) and de.item_experts.w1.shape == (5, 4, 6)
    assert [m.value for m in Method] == ["none", "ftd", "htd", "de"]
    assert type(DistillConfig(method=Method.htd).method) is str


@pytest.mark.parametrize(
    "field, value",
    [
        ("method", "rrd"),
        ("lambda_", -1e-3),
        ("lambda_", math.nan),
        ("alpha", 1.5),
        ("alpha", -0.1),
        ("groups", 0),
        ("groups", 2.5),
        ("reduction", "avg"),
        ("temperature_start", 0.0),
        ("temperature_end", -1.0),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=re.escape(f"distill.{field}={value!r}")):
        DistillConfig(**{field: value})


def test_config_rejects_a_rising_temperature():
    with pytest.raises(ConfigError, match="temperature_end"):
        DistillConfig(temperature_start=0.1, temperature_end=1.0)


def test_config_defaults_are_the_papers():
    config = DistillConfig()

    assert (config.lambda_, config.alpha, config.groups) == (1e-3, 0.5, 30)
    assert (config.temperature_start, config.temperature_end) == (1.0, 1e-10)
    assert config.reduction == "sum"


def test_losses_reject_an_unknown_reduction():
    with pytest.raises(ConfigError, match="reduction"):
        FTDLoss(reduction="avg")
    with pytest.raises(ConfigError, match="reduction"):
        HTDLoss(d_student=2, d_teacher=4, reduction="avg")
