"""Multiply-adds per query, counted from an exported graph.

What counts, per node, with every shape taken at a batch of one user:

- matrix products (MatMul, Gemm and their quantized and fused forms): output elements times
  the reduced dimension, one multiply-add each;
- elementwise Mul (QLinearMul): one per output element, a multiply without its add, counted
  because a quantized graph's rescaling and NCF's GMF product are real per-query work.

Adds, comparisons, Gather, TopK and casts are not counted: they are memory-bound, and a MAC
count is a measure of arithmetic. The shapes are read from the graph run itself: every node
output is made a graph output and the graph is run once on user 0 with optimizations off, so
the count is exact for any operator onnxruntime runs, contrib (com.microsoft) ones included,
where static shape inference knows nothing of the quantized operators' outputs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Products whose first input is [..., m, k] and second [k, n] (or the quantized equivalents,
# whose extra inputs are scales and zero points).
MATMUL_OPS = frozenset(
    {
        "MatMul",
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "FusedMatMul",
    }
)
GEMM_OPS = frozenset({"Gemm", "QGemm"})
MUL_OPS = frozenset({"Mul", "QLinearMul"})


def count_macs(model_path: Path) -> int:
    """Multiply-adds of one query (a batch of one user) of the graph at `model_path`."""
    return sum(macs_by_op(model_path).values())


def macs_by_op(model_path: Path) -> dict[str, int]:
    """The count of `count_macs`, by operator type."""
    import onnx

    model = onnx.load(str(model_path))
    shapes = _tensor_shapes(model)
    totals: dict[str, int] = {}
    for node in model.graph.node:
        macs = _node_macs(node, shapes)
        if macs:
            totals[node.op_type] = totals.get(node.op_type, 0) + macs
    return totals


def _node_macs(node, shapes: dict[str, tuple[int, ...]]) -> int:
    out = shapes.get(node.output[0]) if node.output else None
    if out is None:
        return 0
    elements = int(np.prod(out, dtype=np.int64))
    if node.op_type in MATMUL_OPS:
        # QLinearMatMul is (a, a_scale, a_zero, b, ...): its left operand is still input 0.
        left = shapes.get(node.input[0])
        return elements * left[-1] if left else 0
    if node.op_type in GEMM_OPS:
        left = shapes.get(node.input[0])
        trans_a = any(a.name == "transA" and a.i for a in node.attribute)
        return elements * (left[0] if trans_a else left[1]) if left else 0
    if node.op_type in MUL_OPS:
        return elements
    return 0


def _tensor_shapes(model) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape at a batch of one: initializers from the file, the rest from a run."""
    import onnx
    from onnx import numpy_helper

    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    named = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in named:
                # No type: onnxruntime takes the one it infers, contrib operators included.
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                named.add(name)
    for constant in (n for n in model.graph.node if n.op_type == "Constant"):
        value = next((a.t for a in constant.attribute if a.name == "value"), None)
        if value is not None:
            shapes[constant.output[0]] = numpy_helper.to_array(value).shape

    session = _unoptimized_session(probe.SerializeToString())
    name = session.get_inputs()[0].name
    shapes[name] = (1,)
    results = session.run(None, {name: np.zeros(1, dtype=np.int64)})
    for output, value in zip(session.get_outputs(), results, strict=True):
        shapes[output.name] = tuple(np.shape(value))
    return shapes


def _unoptimized_session(model: bytes):
    # Not `open_session`: optimizations off, because fusions would rename or remove the very
    # outputs being probed.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
