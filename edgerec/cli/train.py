"""`edgerec train`: train a teacher (or any model) and write its run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from edgerec.cli import options as o
from edgerec.cli import render
from edgerec.data.config import Format
from edgerec.models.registry import ModelName


def command(
    model: ModelName = typer.Option(None, "--model", help="Model family."),
    data: str = o.DATA,
    out: Path = o.OUT,
    config: Path = o.CONFIG,
    format: Format = o.FORMAT,
    valid: Path = o.VALID,
    test: Path = o.TEST,
    split: o.Split = o.SPLIT,
    rating_threshold: float = o.THRESHOLD,
    kcore: int = o.KCORE,
    dim: int = o.DIM,
    layers: int = o.LAYERS,
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
    """Train BPR-MF or NCF on a dataset and evaluate it with full ranking."""
    from edgerec.cli.progress import epoch_bar
    from edgerec.train.job import train_run

    flags = o.overrides(
        name=model,
        source=data,
        format=format,
        valid_path=valid,
        test_path=test,
        split=split,
        rating_threshold=rating_threshold,
        kcore=kcore,
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
    run_config = o.resolve_config(config, flags)

    label = f"train {run_config.model.name} dim {run_config.model.dim}"
    with epoch_bar(run_config.train.epochs, label, run_config.train.metric, enabled=not json) as cb:
        metrics = train_run(run_config, out, resume=resume, on_epoch=cb)

    if json:
        render.json_out({k: v for k, v in metrics.items() if k != "history"})
        return
    render.metrics_table(
        f"{run_config.model.name} dim {run_config.model.dim} → {out}",
        metrics,
        extra={
            "epochs": metrics["epochs"],
            "best epoch": metrics["best_epoch"],
            "seconds": f"{metrics['seconds']:.1f}",
            "params": metrics["params"],
        },
    )
