"""`edgerec train` as a library call: data → model → fit → run directory."""

from __future__ import annotations

import logging
from pathlib import Path

from edgerec.train import rundir
from edgerec.train.loop import EpochCallback, TrainResult

log = logging.getLogger(__name__)


def train_run(
    config: rundir.RunConfig,
    out: Path,
    *,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    distiller_factory=None,
) -> dict:
    """Train the model `config` describes and write RUN_DIR; returns metrics.json's content.

    Everything that can fail on bad input (data, model, run directory) is checked before the
    first file is written. `distiller_factory(dataset) -> (distiller, extra_metrics)` turns the
    run into a distillation (see `edgerec.distill.job`).
    """
    import torch

    from edgerec.data import load_dataset
    from edgerec.models.registry import build_model
    from edgerec.train.loop import fit

    dataset = load_dataset(config.data)
    # The initial weights come from torch's global generator: seed it here, not only in the
    # loop, so the same config gives the same model whatever ran before in the process.
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, dataset.n_users, dataset.n_items)
    distiller, extra = (None, {})
    if distiller_factory is not None:
        distiller, extra = distiller_factory(dataset, model)
    rundir.prepare(out, config, dataset, resume=resume)

    result = fit(
        model,
        dataset,
        config.train,
        run_dir=Path(out),
        resume=resume,
        distiller=distiller,
        on_epoch=on_epoch,
    )
    metrics = metrics_of(result, extra)
    rundir.finish(out, result.model, metrics)
    log.info("wrote %s", out)
    return metrics


def metrics_of(result: TrainResult, extra: dict) -> dict:
    import statistics

    return {
        "valid": result.valid,
        "test": result.test,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "epoch_seconds_median": statistics.median(result.epoch_seconds)
        if result.epoch_seconds
        else None,
        "params": result.model.n_params(),
        "bytes": result.model.n_bytes(),
        **extra,
        "history": result.history,
    }
