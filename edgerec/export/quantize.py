"""int8 quantization of an exported graph with `onnxruntime.quantization`.

Every mode starts from `quant_pre_process` (symbolic and ONNX shape inference), which the
quantizers need to know the shapes of what they rewrite.

- dynamic (QOperator): `quantize_dynamic` on MatMul and Gather. The MatMuls' constant operands
  become int8 (or uint8, by preset) and run as MatMulInteger with activations quantized per
  query; the embedding tables behind the Gathers become uint8 with one scale per table (the
  only form onnxruntime's Gather quantization has), and the gathered rows feed MatMulInteger
  directly or are dequantized. Without Gather the tables, most of a recommender's bytes, would
  stay fp32.
- static (QDQ): `quantize_static` with activation ranges calibrated on training users read by a
  `CalibrationDataReader`, by MinMax, Entropy or Percentile; QuantizeLinear/DequantizeLinear
  pairs around MatMul and Gather, which onnxruntime fuses into integer kernels when it loads.
- weights-only: weights stored int8 with scales, dequantized in the graph, compute fp32.
  onnxruntime 1.32 has no one pass for this at 8 bits: `MatMulNBitsQuantizer` writes 8-bit
  MatMulNBits (block-wise int8 weights, fp32 activations and accumulation) but quantizes Gather
  to 4 bits only. So the tables go through `quantize_dynamic` restricted to Gather (uint8 table,
  DequantizeLinear after the Gather: weight-only by construction), then the MatMuls through
  `MatMulNBitsQuantizer(bits=8)`.

TopK, the seen-item mask and the score sums are never quantized: int8 scores would tie and
reorder the top k, and -inf has no int8 value.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from edgerec.errors import ExportError
from edgerec.export.config import QuantConfig
from edgerec.export.presets import get_preset
from edgerec.runtime.bundle import INPUT

log = logging.getLogger(__name__)

# The graphs are written with MatMul (see edgerec.export.graph); Gemm is listed for the static
# quantizer, dynamic quantization has no integer Gemm and leaves one in fp32.
# Limitation: the folded NeuMF's [n_items, h1] item constant is an operand of an Add, which no
# onnxruntime quantizer treats as a weight, so it stays fp32 in every mode.
WEIGHT_OPS = ["MatMul", "Gemm", "Gather"]
CALIBRATION_BATCH = 32
# Block size along the inner dimension for 8-bit MatMulNBits; per_channel takes whole columns.
WEIGHTS_ONLY_BLOCK = 32


def quantize_model(
    fp32_path: Path, out_path: Path, config: QuantConfig, calibration_users: np.ndarray
) -> dict:
    """Quantize `fp32_path` into `out_path`; returns the resolved settings for the manifest."""
    settings = resolved_settings(config)
    with tempfile.TemporaryDirectory(prefix="edgerec-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        _pre_process(fp32_path, prepared)
        try:
            if config.mode == "dynamic":
                _dynamic(prepared, out_path, config, settings)
            elif config.mode == "static":
                _static(prepared, out_path, config, settings, calibration_users)
                settings["calibration_users"] = len(calibration_users)
            else:
                settings["block_size"] = _weights_only(prepared, out_path, config, Path(tmp))
        except ExportError:
            raise
        except Exception as exc:  # the quantizers raise bare exceptions of many kinds
            raise ExportError(f"{config.mode} quantization failed: {exc}") from exc
    log.info("quantized %s (%s, %s) -> %s", fp32_path, config.mode, config.preset, out_path)
    return settings


def resolved_settings(config: QuantConfig) -> dict:
    """What the mode and preset mean in onnxruntime's terms."""
    preset = get_preset(config.preset)
    settings = {"mode": config.mode, "preset": preset.name, "per_channel": config.per_channel}
    if config.mode == "dynamic":
        return settings | {
            "format": "QOperator",
            "activations": "uint8",
            "weights": preset.dynamic_weights,
            "tables": "uint8",
            "reduce_range": preset.reduce_range,
            "op_types": WEIGHT_OPS,
        }
    if config.mode == "static":
        return settings | {
            "format": "QDQ",
            "activations": preset.static_activations,
            "weights": preset.static_weights,
            "reduce_range": preset.reduce_range,
            "op_types": WEIGHT_OPS,
            "calibration": config.calibration_method,
            "calibration_users": config.n_calibration_users,
        }
    return settings | {
        "format": "MatMulNBits + QOperator Gather",
        "activations": "float32",
        "weights": "int8",
        "tables": "uint8",
        "block_size": None,  # known once the graph is read
        "op_types": ["MatMul", "Gather"],
    }


class UserCalibrationReader:
    """Feeds batches of training users to onnxruntime's calibrators.

    Built lazily as a subclass of `CalibrationDataReader` by `calibration_reader`, so that
    importing this module does not import onnxruntime.
    """

    def __init__(self, users: np.ndarray, max_batch: int = CALIBRATION_BATCH):
        users = np.asarray(users, dtype=np.int64)
        # Every batch the same size: the histogram calibrators (Entropy, Percentile) stack the
        # batches' tensors into one array and fail on a shorter last batch.
        size = next(b for b in range(min(max_batch, len(users)), 0, -1) if len(users) % b == 0)
        self.batches = [users[i : i + size] for i in range(0, len(users), size)]
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.batches):
            return None
        batch = self.batches[self.position]
        self.position += 1
        return {INPUT: batch}

    def rewind(self) -> None:
        self.position = 0


def calibration_reader(users: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(UserCalibrationReader, CalibrationDataReader):
        pass

    return Reader(users)


def _pre_process(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import quant_pre_process

    try:
        # No optimization pass: onnxruntime's would fuse MatMul + Add into Gemm, which dynamic
        # quantization has no integer kernel for. The exporter already optimized the graph.
        quant_pre_process(str(src), str(dst), skip_optimization=True, save_as_external_data=False)
    except Exception as exc:
        raise ExportError(f"quantization pre-processing of {src} failed: {exc}") from exc


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def _dynamic(src: Path, dst: Path, config: QuantConfig, settings: dict) -> None:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=WEIGHT_OPS,
        per_channel=config.per_channel,
        reduce_range=settings["reduce_range"],
        weight_type=_qtype(settings["weights"]),
        extra_options={"MatMulConstBOnly": True},
    )


def _static(src: Path, dst: Path, config: QuantConfig, settings: dict, users: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if len(users) == 0:
        raise ExportError("static quantization needs calibration users: the run has none")
    # The histogram calibrators print progress to stdout; a library keeps stdout for results.
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        quantize_static(
            str(src),
            str(dst),
            calibration_reader(users),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=WEIGHT_OPS,
            per_channel=config.per_channel,
            reduce_range=settings["reduce_range"],
            activation_type=_qtype(settings["activations"]),
            weight_type=_qtype(settings["weights"]),
            calibrate_method=methods[settings["calibration"]],
            # Scores stay fp32 out of every MatMul (onnxruntime then runs MatMulIntegerToFloat):
            # an 8-bit score would tie hundreds of items and scramble the top k.
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]},
        )
    if chatter.getvalue():
        log.debug("calibration: %s", chatter.getvalue().strip())


def _weights_only(src: Path, dst: Path, config: QuantConfig, tmp: Path) -> int:
    """Returns the MatMulNBits block size it used."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    with _root_logging_kept():
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    tables = tmp / "tables.onnx"
    # Gather alone: with no quantized consumer the gathered rows are dequantized at once.
    quantize_dynamic(str(src), str(tables), op_types_to_quantize=["Gather"])

    model = onnx.load(str(tables))
    block = _block_size(model, config.per_channel)
    quantizer = MatMulNBitsQuantizer(
        model, bits=8, block_size=block, is_symmetric=True, op_types_to_quantize=("MatMul",)
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return block


@contextlib.contextmanager
def _root_logging_kept():
    """Undo what importing onnxruntime's matmul_nbits_quantizer does to the root logger.

    That module calls `logging.basicConfig(level=INFO)` at import, which would make every
    library's INFO records appear on stderr of a process that had not configured logging.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _block_size(model, per_channel: bool) -> int:
    """MatMulNBits' block along the inner dimension: a power of two, at least 16.

    per_channel: the smallest block covering every constant MatMul operand's inner size, one
    scale per column. Otherwise blocks of 32, or smaller when no operand is that deep, since a
    block deeper than the operand is padding stored in the file.
    """
    # Limitation: an operand shallower than 16 (a student of dim 8) is still padded to 16, so
    # its weights take 2 bytes each; MatMulNBits has no smaller block.
    from onnx import numpy_helper

    constants = {init.name: init for init in model.graph.initializer}
    inner = [
        numpy_helper.to_array(constants[node.input[1]]).shape[0]
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in constants
    ]
    block = 16
    while block < max(inner, default=16):
        block *= 2
    return block if per_channel else min(block, WEIGHTS_ONLY_BLOCK)
