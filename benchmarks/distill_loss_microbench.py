"""Time one batch of each distillation loss, forward and backward, on synthetic representations.

The default sizes are those of a CiteULike batch in the Topology Distillation setting (about 930
unique users and 1900 unique items, a 20-d student and a 200-d teacher, 30 groups per side). HTD
and DE are timed at the first epoch's temperature, where the Gumbel weights are dense, and at the
last epoch's, where they are one-hot; `--schedule` also times them at every epoch's temperature
and reports the mean over the run. Each line gives the medians over the repeats of the wall and
CPU time of a batch, and the CPU median times the batches of an epoch: the epoch's distillation
overhead. The CPU time is the one to trust on a shared machine, as it leaves out the time the
process waited for a core.

    .venv/bin/python benchmarks/distill_loss_microbench.py [--threads 1] [--schedule]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from edgerec.distill.base import BatchRepresentations, DistillLoss
from edgerec.distill.de import DELoss
from edgerec.distill.experts import ExpertDistillLoss
from edgerec.distill.ftd import FTDLoss
from edgerec.distill.htd import HTDLoss

WARMUP = 3


def time_batch(
    loss: DistillLoss, student: BatchRepresentations, teacher: BatchRepresentations, repeats: int
) -> tuple[float, float]:
    """Median wall and CPU milliseconds of one forward and backward pass."""
    wall, cpu = [], []
    for i in range(WARMUP + repeats):
        loss.zero_grad(set_to_none=True)
        student.users.grad, student.items.grad = None, None
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        loss(student, teacher).backward()
        if i >= WARMUP:  # the first passes warm up the allocator and the kernels
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def report(label: str, wall_ms: float, cpu_ms: float, batches: int) -> None:
    print(
        f"{label:<32} wall {wall_ms:7.2f} ms/batch, cpu {cpu_ms:7.2f} ms/batch, "
        f"x{batches} = {cpu_ms * batches / 1e3:6.2f} s cpu/epoch"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=930)
    parser.add_argument("--items", type=int, default=1900)
    parser.add_argument("--d-student", type=int, default=20)
    parser.add_argument("--d-teacher", type=int, default=200)
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--batches", type=int, default=113, help="batches per epoch")
    parser.add_argument("--epochs", type=int, default=50, help="for the annealing schedule")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--schedule", action="store_true", help="also time every epoch's T")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    student = BatchRepresentations(
        torch.randn(args.users, args.d_student, requires_grad=True),
        torch.randn(args.items, args.d_student, requires_grad=True),
    )
    teacher = BatchRepresentations(
        torch.randn(args.users, args.d_teacher), torch.randn(args.items, args.d_teacher)
    )
    sizes = {"d_student": args.d_student, "d_teacher": args.d_teacher, "groups": args.groups}
    print(
        f"{args.users} users, {args.items} items, d_s={args.d_student}, d_t={args.d_teacher}, "
        f"K={args.groups}, {args.threads} thread(s), median of {args.repeats}"
    )

    for label, ftd in (("ftd", FTDLoss()), ("ftd exact", FTDLoss(exact=True))):
        report(label, *time_batch(ftd, student, teacher, args.repeats), args.batches)

    losses: list[tuple[str, ExpertDistillLoss]] = [
        ("htd", HTDLoss(**sizes)),
        ("de", DELoss(**sizes)),
    ]
    for name, loss in losses:
        for epoch in (0, args.epochs - 1):
            loss.on_epoch_start(epoch, args.epochs)
            label = f"{name} epoch {epoch + 1}/{args.epochs}, T={loss.temperature:.0e}"
            report(label, *time_batch(loss, student, teacher, args.repeats), args.batches)

    if args.schedule:
        for name, loss in losses:
            per_epoch = []
            for epoch in range(args.epochs):
                loss.on_epoch_start(epoch, args.epochs)
                per_epoch.append(time_batch(loss, student, teacher, repeats=3))
            wall_ms, cpu_ms = (statistics.fmean(times) for times in zip(*per_epoch, strict=True))
            report(f"{name} mean of {args.epochs} epochs", wall_ms, cpu_ms, args.batches)


if __name__ == "__main__":
    main()
