"""What an export produces: `ExportConfig`, and `QuantConfig` for an int8 one.

Both are frozen and validate themselves when built; the manifest of every bundle saves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgerec.errors import ConfigError
from edgerec.export.presets import DEFAULT_PRESET, get_preset

MODES = ("dynamic", "static", "weights-only")
CALIBRATIONS = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION = "minmax"
DEFAULT_CALIBRATION_USERS = 256

# BitwiseAnd, which unpacks the seen-item bitmask, needs opset 18; torch.onnx writes at most 23.
MIN_OPSET, MAX_OPSET = 18, 23
# Opset 20 (onnx 1.15, onnxruntime >= 1.17), torch.onnx's own default. Not 21: from 21 on,
# onnxruntime 1.32's QDQ propagation inserts QuantizeLinear nodes whose output_dtype contradicts
# their zero point, and a static model fails to load (microsoft/onnxruntime#25526, #28144).
DEFAULT_OPSET = 20
MAX_STATIC_OPSET = 20


@dataclass(frozen=True)
class QuantConfig:
    # dynamic: int8 weights and tables, activations quantized per query (QOperator).
    # static: QDQ, activation ranges calibrated on training users.
    # weights-only: int8 weights and tables, dequantized in the graph, fp32 compute.
    mode: str = "dynamic"
    preset: str = DEFAULT_PRESET
    per_channel: bool = False
    # Static only; None takes minmax.
    calibration: str | None = None
    # Static only: how many training users calibrate; None takes 256 (or all, if fewer).
    calibration_users: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"quant mode '{self.mode}' is unknown: expected one of {', '.join(MODES)}"
            )
        get_preset(self.preset)
        if self.calibration is not None and self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"calibration '{self.calibration}' is unknown: expected one of "
                f"{', '.join(CALIBRATIONS)}"
            )
        if self.calibration_users is not None and (
            isinstance(self.calibration_users, bool)
            or not isinstance(self.calibration_users, int)
            or self.calibration_users < 1
        ):
            raise ConfigError(
                f"calibration_users must be an integer >= 1, got {self.calibration_users!r}"
            )
        static_only = [
            name for name in ("calibration", "calibration_users") if getattr(self, name) is not None
        ]
        if static_only and self.mode != "static":
            raise ConfigError(
                f"{' and '.join(static_only)} apply to static quantization only, "
                f"got mode '{self.mode}': drop them or choose static"
            )

    @property
    def calibration_method(self) -> str:
        return self.calibration or DEFAULT_CALIBRATION

    @property
    def n_calibration_users(self) -> int:
        return self.calibration_users or DEFAULT_CALIBRATION_USERS


@dataclass(frozen=True)
class ExportConfig:
    # The cut-off: the graph returns each user's top k items.
    k: int = 50
    # Return every item's score [batch, n_items] instead of the top k.
    scores_only: bool = False
    # Give each user's training items -inf before the top k, inside the graph.
    exclude_seen: bool = False
    # NCF only: fold the item side of the model into constants (see edgerec.export.graph).
    fold: bool = True
    # None exports fp32.
    quant: QuantConfig | None = None
    validate: bool = True
    opset: int = DEFAULT_OPSET
    # Also write runner.pyz, the torch-free runtime as one file (edgerec.export.runner).
    bundle_runner: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(
                f"opset {self.opset} is out of range: expected {MIN_OPSET} to {MAX_OPSET}"
            )
        if self.quant is not None and not isinstance(self.quant, QuantConfig):
            raise ConfigError(
                f"quant must be a QuantConfig or None, got {type(self.quant).__name__}"
            )
        if self.quant is not None and self.quant.mode == "static" and self.opset > MAX_STATIC_OPSET:
            raise ConfigError(
                f"static quantization needs opset <= {MAX_STATIC_OPSET}, got {self.opset}: "
                "onnxruntime cannot load such QDQ models (see DEFAULT_OPSET)"
            )
