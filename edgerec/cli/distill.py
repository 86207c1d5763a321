"""`edgerec distill`: train a compact student from a teacher run with FTD, HTD, DE or none."""

from __future__ import annotations

from pathlib import Path

import typer

from edgerec.cli import options as o
from edgerec.cli import render
from edgerec.distill.registry import Method


def command(
    teacher: Path = typer.Option(..., "--teacher", help="The teacher's run directory."),
    method: Method = typer.Option(Method.htd, "--method", help="Distillation method."),
    dim: int = o.DIM,
    layers: int = o.LAYERS,
    lambda_: float = typer.Option(None, "--lambda", help="Weight of the distillation loss."),
    alpha: float = typer.Option(None, "--alpha", help="HTD: topology vs group-assignment weight."),
    groups: int = typer.Option(None, "--groups", help="HTD/DE: groups per side."),
    distill_reduction: o.Reduction = typer.Option(
        None, "--distill-reduction", help="sum (reference) or mean over the batch's terms."
    ),
    out: Path = o.OUT,
    config: Path = o.CONFIG,
    data: str = o.DATA,
    epochs: int = o.EPOCHS,
    lr: float = o.LR,
    batch_size: int = o.BATCH,
    weight_decay: float = o.WD,
    negatives: int = o.NEG,
    seed: int = o.SEED,
    device: str = o.DEVICE,
    protocol: o.Protocol = o.PROTOCOL,
    patience: int = o.PATIENCE,
    threads: int = o.THREADS,
    reduction: o.Reduction = o.REDUCTION,
    resume: bool = o.RESUME,
    json: bool = o.JSON,
) -> None:
    """Distill a student of the teacher's family; the student sees exactly the teacher's data."""
    from edgerec.cli.progress import epoch_bar
    from edgerec.config import load_toml
    from edgerec.distill.job import distill_run, student_config
    from edgerec.train.rundir import open_run

    flags = o.overrides(
        source=data,
        dim=dim,
        layers=layers,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        negatives=negatives,
        seed=seed,
        device=device,
        protocol=protocol,
        patience=patience,
        threads=threads,
        reduction=reduction,
    )
    distill_flags = {
        "method": method.value,
        "lambda_": lambda_,
        "alpha": alpha,
        "groups": groups,
        "reduction": distill_reduction.value if distill_reduction else None,
    }
    flags["distill"] = {k: v for k, v in distill_flags.items() if v is not None}
    teacher_run = open_run(teacher)
    run_config = student_config(teacher_run, flags, load_toml(config) if config else None)

    label = f"distill {method.value} dim {run_config.model.dim}"
    with epoch_bar(run_config.train.epochs, label, run_config.train.metric, enabled=not json) as cb:
        metrics = distill_run(teacher, run_config, out, resume=resume, on_epoch=cb)

    if json:
        render.json_out({k: v for k, v in metrics.items() if k != "history"})
        return
    render.metrics_table(
        f"{method.value} student dim {run_config.model.dim} → {out}",
        metrics,
        extra={
            "params": metrics["params"],
            "compression": f"{metrics['compression']:.1f}x",
            "epochs": metrics["epochs"],
            "seconds": f"{metrics['seconds']:.1f}",
        },
    )
