"""`edgerec export`: a run directory to a validated ONNX bundle, fp32 or int8."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from edgerec.cli import render
from edgerec.export.presets import DEFAULT_PRESET, Target


class Calibration(StrEnum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


def command(
    run_dir: Path = typer.Argument(..., help="A run directory from edgerec train or distill."),
    out: Path = typer.Option(..., "--out", help="Bundle directory (an old bundle is replaced)."),
    k: int = typer.Option(50, "--k", help="Items returned per user."),
    int8: bool = typer.Option(False, "--int8", help="Quantize to int8 (dynamic unless told)."),
    static: bool = typer.Option(False, "--static", help="int8: static QDQ, calibrated on users."),
    weights_only: bool = typer.Option(
        False, "--weights-only", help="int8: int8 weights, fp32 compute."
    ),
    target: Target = typer.Option(
        None, "--target", help=f"int8: the CPU to tune for (default {DEFAULT_PRESET})."
    ),
    per_channel: bool = typer.Option(False, "--per-channel", help="int8: per-column scales."),
    calibration: Calibration = typer.Option(
        None, "--calibration", help="--static: how activation ranges are chosen (minmax)."
    ),
    calibration_users: int = typer.Option(
        None, "--calibration-users", help="--static: training users to calibrate on (256)."
    ),
    scores_only: bool = typer.Option(
        False, "--scores-only", help="Return every item's score instead of the top k."
    ),
    exclude_seen: bool = typer.Option(
        False, "--exclude-seen", help="Never return a user's training items."
    ),
    no_fold: bool = typer.Option(False, "--no-fold", help="NCF: keep the item side unfolded."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip the parity checks."),
    bundle_runner: bool = typer.Option(
        False, "--bundle-runner", help="Add runner.pyz: serve the bundle with numpy+onnxruntime."
    ),
    json: bool = typer.Option(False, "--json", help="Print the manifest instead of the summary."),
) -> None:
    """Export a trained model to ONNX with its top-k inside, validate it, write a bundle."""
    from edgerec.export.config import ExportConfig

    quant = _quant_config(
        int8, static, weights_only, target, per_channel, calibration, calibration_users
    )
    config = ExportConfig(
        k=k,
        scores_only=scores_only,
        exclude_seen=exclude_seen,
        fold=not no_fold,
        quant=quant,
        validate=not no_validate,
        bundle_runner=bundle_runner,
    )

    from edgerec.export.job import export_run

    def show(check) -> None:
        render.check_line(check.passed, check.describe())

    manifest = export_run(run_dir, out, config, on_check=show)

    if json:
        render.json_out(manifest)
        return
    _summary(out, manifest)


def _quant_config(int8, static, weights_only, target, per_channel, calibration, users):
    """The QuantConfig the flags ask for, or None for fp32; flags that need --int8 say so."""
    from edgerec.errors import ConfigError
    from edgerec.export.config import QuantConfig

    if static and weights_only:
        raise ConfigError("--static and --weights-only are two int8 modes: choose one")
    int8 = int8 or static or weights_only
    given = {
        "--target": target is not None,
        "--per-channel": per_channel,
        "--calibration": calibration is not None,
        "--calibration-users": users is not None,
    }
    if not int8:
        stray = [flag for flag, set_ in given.items() if set_]
        if stray:
            verb = "applies" if len(stray) == 1 else "apply"
            raise ConfigError(f"{', '.join(stray)} {verb} to int8 exports only: add --int8")
        return None
    if not static and (given["--calibration"] or given["--calibration-users"]):
        raise ConfigError("--calibration and --calibration-users apply to --static only")
    mode = "static" if static else "weights-only" if weights_only else "dynamic"
    return QuantConfig(
        mode=mode,
        preset=target.value if target is not None else DEFAULT_PRESET,
        per_channel=per_channel,
        calibration=calibration.value if calibration is not None else None,
        calibration_users=users,
    )


def _summary(out: Path, manifest: dict) -> None:
    from edgerec.export.validate import format_value

    record, model = manifest["file"], manifest["model"]
    quant = manifest["quantization"]
    precision = "fp32" if quant is None else f"int8 {quant['mode']} ({quant['preset']})"
    checks = manifest["validation"]["checks"]
    parity = {c["name"]: c["value"] for c in checks if c["value"] is not None}
    rows = [
        ("bundle", str(out)),
        ("model", f"{model['kind']} dim {model['dim']}, {model['params']:,} params"),
        ("precision", precision),
        ("returns", "every score" if manifest["outputs"] == "scores" else f"top {manifest['k']}"),
        ("file", f"{record['bytes']:,} bytes, sha256 {record['sha256'][:12]}"),
    ]
    runner = manifest.get("runner")
    if runner:
        rows.append(("runner", f"{runner['file']}, {runner['bytes']:,} bytes"))
    rows += [(name, format_value(value)) for name, value in parity.items()]
    if manifest["validation"].get("skipped"):
        rows.append(("validation", "skipped (--no-validate)"))
    render.table("export", ["", "value"], rows)
