"""`edgerec export` as a library call: run directory → validated bundle.

    open the run → build the graph → export fp32 → validate against PyTorch
    → quantize (int8) → validate against fp32 → write the bundle atomically

Every check runs before any failure is raised, so one export reports all that is wrong with it.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgerec.config import to_dict
from edgerec.errors import ExportError
from edgerec.export import bundle
from edgerec.export.config import ExportConfig
from edgerec.export.validate import Check, Thresholds

log = logging.getLogger(__name__)

CheckCallback = Callable[[Check], None]


def export_run(
    run_dir: Path,
    out: Path,
    config: ExportConfig | None = None,
    *,
    thresholds: Thresholds | None = None,
    on_check: CheckCallback | None = None,
) -> dict:
    """Export the model of `run_dir` into the bundle `out`; returns its manifest.

    `on_check(check)` is called with each validation check as it completes. With
    `config.validate` a failed check raises `ValidationError` and no bundle is written.
    """
    from edgerec.atomic import staged_directory
    from edgerec.train.rundir import open_run

    config = config or ExportConfig()
    thresholds = thresholds or Thresholds()
    run = open_run(Path(run_dir))
    bundle.check_target(out, run.path)
    model = run.load_model()
    dataset = run.load_dataset()
    _check_k(config, dataset.n_items)

    with tempfile.TemporaryDirectory(prefix="edgerec-export-") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        _export_fp32(model, dataset, config, fp32_path)
        checks = _validate(config, thresholds, on_check, "fp32", fp32_path, model, dataset)

        shipped, quantization = fp32_path, None
        if config.quant is not None:
            from edgerec.export.quantize import quantize_model

            shipped = Path(tmp) / "int8.onnx"
            users = _calibration_users(dataset, config.quant.n_calibration_users)
            quantization = quantize_model(fp32_path, shipped, config.quant, users)
            quantization["config"] = to_dict(config.quant)
            checks += _validate(config, thresholds, on_check, "int8", shipped, fp32_path, dataset)

        if config.validate:
            from edgerec.export.validate import raise_if_failed

            raise_if_failed(checks)
        manifest = _manifest(run, model, dataset, config, thresholds, quantization, checks, shipped)
        with staged_directory(Path(out)) as stage:
            if config.bundle_runner:
                from edgerec.export.runner import RUNNER, build_runner

                # Inside the stage, so that the bundle appears with its runner or not at all.
                manifest["runner"] = build_runner(stage / RUNNER)
            manifest = bundle.write_bundle(stage, shipped, dataset, manifest)
    log.info("wrote bundle %s (%d bytes)", out, manifest["file"]["bytes"])
    return manifest


def _check_k(config: ExportConfig, n_items: int) -> None:
    if config.k > n_items:
        raise ExportError(f"k={config.k} exceeds the catalogue: the run has {n_items} items")


def _export_fp32(model, dataset, config: ExportConfig, path: Path) -> None:
    from edgerec.export.graph import RecommenderGraph, build_scorer, export_onnx, seen_bitmask

    seen = None
    if config.exclude_seen:
        train = dataset.train
        seen = seen_bitmask(train.users, train.items, dataset.n_users, dataset.n_items)
    graph = RecommenderGraph(
        build_scorer(model, fold=config.fold),
        dataset.n_users,
        dataset.n_items,
        config.k,
        scores_only=config.scores_only,
        seen=seen,
    )
    export_onnx(graph, path, opset=config.opset)


def _validate(config, thresholds, on_check, stage: str, path: Path, reference, dataset) -> list:
    """Run the checks of one stage if validation is on; report each through `on_check`."""
    if not config.validate:
        return []
    from edgerec.export import validate

    if stage == "fp32":
        checks = validate.check_fp32(
            path, reference, dataset, config.k, config.exclude_seen, thresholds
        )
    else:
        checks = validate.check_int8(path, reference, dataset, config.k, thresholds)
    for check in checks:
        (log.info if check.passed else log.warning)("%s", check.describe())
        if on_check is not None:
            on_check(check)
    return checks


def _calibration_users(dataset, n: int) -> np.ndarray:
    """A fixed sample of users with training interactions: what a deployed model will see."""
    active = np.unique(dataset.train.users)
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(active, size=min(n, len(active)), replace=False)).astype(np.int64)


def _manifest(run, model, dataset, config, thresholds, quantization, checks, shipped) -> dict:
    from edgerec.export.graph import OUT_OF_RANGE

    model_config = run.config.model
    method = run.config.distill.method
    manifest = {
        "model": {
            "kind": model_config.name,
            "dim": model_config.dim,
            "layers": model_config.layers if model_config.name == "ncf" else None,
            "params": model.n_params(),
            "fold": config.fold if model_config.name == "ncf" else None,
        },
        "k": config.k,
        "outputs": "scores" if config.scores_only else "topk",
        "exclude_seen": config.exclude_seen,
        "out_of_range": OUT_OF_RANGE,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint()},
        "lineage": {
            "run": str(run.path.resolve()),
            "role": "student" if run.config.teacher else "model",
            "teacher": run.config.teacher,
            "method": None if method == "none" else method,
        },
        "quantization": quantization,
        "graph": bundle.graph_signature(shipped),
        "validation": _validation_record(config, thresholds, checks),
        "versions": bundle.library_versions(),
        "export_config": to_dict(config),
    }
    if config.exclude_seen:
        manifest["seen_mask"] = {
            "encoding": "bitmask: item j is bit j % 8 of byte j // 8 of its user's row",
            "bytes": dataset.n_users * ((dataset.n_items + 7) // 8),
        }
    return manifest


def _validation_record(config, thresholds, checks) -> dict:
    if not config.validate:
        return {"passed": None, "skipped": True, "checks": []}
    return {
        "passed": all(check.passed for check in checks),
        "thresholds": dataclasses.asdict(thresholds),
        "checks": [check.to_dict() for check in checks],
    }
