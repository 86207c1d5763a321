"""Checks that an exported graph computes what the trained model computes.

After the fp32 export, against PyTorch (`Recommender.score_all`, masked as the graph masks):

- the ONNX checker with `full_check` (types and shapes inferred through the whole graph);
- the largest |score difference| over every item of a sample of users, <= 1e-4;
- top-k agreement: the share of PyTorch's top k that onnxruntime returns, >= 0.99.

After quantization, against the fp32 export:

- the ONNX checker again;
- top-k agreement on the same sample of users;
- Recall@k and NDCG@k on the test split, by `edgerec.runtime.metrics.rank_and_score`, the
  evaluator training reports with: each may fall at most 5% of the fp32 export's value below it,
  or 0.005 when that is more: a metric near zero (a barely trained model) moves by more than 5%
  when a single hit changes.

The evaluator needs every item's score, while a bundle's graph returns its top k. So the scores
are read where the graph computes them: a copy of the graph held in memory gets TopK's input
as one more output. That is the ranking the shipped graph takes its top k of, seen-item mask
included, and not a second export that could differ from it.

Every check returns a `Check` record; `raise_if_failed` raises one `ValidationError` that lists
every failure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerec.data.interactions import SplitDataset
from edgerec.errors import ExportError, ValidationError
from edgerec.runtime.bundle import INPUT, open_session
from edgerec.runtime.metrics import CSR, rank_and_score, top_k

log = logging.getLogger(__name__)

_BATCH = 64


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    # "max": value must not exceed threshold; "min": value must reach it.
    bound: str | None = None
    detail: str = ""

    @classmethod
    def bounded(cls, name: str, value: float, threshold: float, bound: str, detail: str = ""):
        passed = value <= threshold if bound == "max" else value >= threshold
        return cls(name, bool(passed), float(value), float(threshold), bound, detail)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name}: {self.detail or ('ok' if self.passed else 'failed')}"
        relation = {"max": ("≤", ">"), "min": ("≥", "<")}[self.bound][0 if self.passed else 1]
        text = f"{self.name} {format_value(self.value)} {relation} {format_value(self.threshold)}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class Thresholds:
    fp32_max_delta: float = 1e-4
    fp32_agreement: float = 0.99
    int8_agreement: float = 0.90
    # Largest fall of Recall@k and NDCG@k from the fp32 export to the int8 one: this share of
    # the fp32 value, or the floor when that is more.
    int8_metric_drop: float = 0.05
    int8_metric_floor: float = 0.005
    sample_users: int = 256


@dataclass(frozen=True)
class GraphRun:
    """What a graph returned for a batch of users: its top k (None for a scores-only graph)
    and every item's score, as ranked inside the graph."""

    items: np.ndarray | None  # [batch, k]
    scores: np.ndarray  # [batch, n_items]


def sample_users(n_users: int, n: int, seed: int = 0) -> np.ndarray:
    """A fixed sample of user indices that always holds the first and the last user."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n_users, size=min(n, n_users), replace=False)
    return np.unique(np.concatenate([chosen, [0, n_users - 1]])).astype(np.int64)


def check_model_file(path: Path, label: str) -> Check:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises ValidationError, InferenceError and others
        return Check(f"{label} onnx checker", False, detail=str(exc).splitlines()[0][:200])
    return Check(f"{label} onnx checker", True, detail="full check passed")


def check_fp32(
    path: Path, model, dataset: SplitDataset, k: int, exclude_seen: bool, limits: Thresholds
) -> list[Check]:
    """The fp32 export against the PyTorch model it came from."""
    import torch

    checks = [check_model_file(path, "fp32")]
    if not checks[0].passed:
        return checks
    users = sample_users(dataset.n_users, limits.sample_users)
    run = run_graph(path, users)
    with torch.no_grad():
        reference = model.score_all(torch.from_numpy(users)).float().numpy()  # [b, n_items]
    if exclude_seen:
        reference = _mask_seen(reference, users, dataset)

    delta = _max_abs_delta(run.scores, reference)
    where = f"{len(users)} users x {dataset.n_items} items"
    agreement = topk_agreement(_returned(run, k), _top_k(reference, k))
    name = f"fp32 top-{k} agreement vs PyTorch"
    return checks + [
        Check.bounded("fp32 max |Δscore| vs PyTorch", delta, limits.fp32_max_delta, "max", where),
        Check.bounded(name, agreement, limits.fp32_agreement, "min"),
    ]


def check_int8(
    path: Path, fp32_path: Path, dataset: SplitDataset, k: int, limits: Thresholds
) -> list[Check]:
    """The quantized export against the fp32 export it was quantized from."""
    checks = [check_model_file(path, "int8")]
    if not checks[0].passed:
        return checks
    users = sample_users(dataset.n_users, limits.sample_users)
    quantized, reference = run_graph(path, users), run_graph(fp32_path, users)

    agreement = topk_agreement(_returned(quantized, k), _returned(reference, k))
    checks.append(
        Check.bounded(f"int8 top-{k} agreement vs fp32", agreement, limits.int8_agreement, "min")
    )
    new_metrics = evaluate_graph(path, dataset, k)
    old_metrics = evaluate_graph(fp32_path, dataset, k)
    for name in (f"recall@{k}", f"ndcg@{k}"):
        new, old = new_metrics[name], old_metrics[name]
        allowed = max(limits.int8_metric_drop * old, limits.int8_metric_floor)
        detail = f"int8 {new:.4f}, fp32 {old:.4f}"
        checks.append(Check.bounded(f"int8 {name} drop vs fp32", old - new, allowed, "max", detail))
    return checks


def raise_if_failed(checks: Sequence[Check]) -> None:
    failures = [check.describe() for check in checks if not check.passed]
    if failures:
        raise ValidationError(failures)


def evaluate_graph(path: Path, dataset: SplitDataset, k: int) -> dict[str, float]:
    """Recall, NDCG and HR at k on the test split, by the evaluator training uses."""
    from edgerec.evaluate.metrics import split_csr

    masked, held_out = split_csr(dataset, "test")
    return graph_accuracy(path, masked, held_out, dataset.n_items, k)


def graph_accuracy(path: Path, masked: CSR, held_out: CSR, n_items: int, k: int) -> dict:
    """Recall, NDCG and HR at k of the ranking the graph makes, from every item's score (the
    input of its TopK), whatever k the graph itself returns."""
    session = _scores_session(path)
    return rank_and_score(
        lambda users: _run(session, users).scores, masked, held_out, n_items, (k,), _BATCH
    )


def run_graph(path: Path, users: np.ndarray) -> GraphRun:
    session = _scores_session(path)
    runs = [_run(session, users[i : i + _BATCH]) for i in range(0, len(users), _BATCH)]
    items = None if runs[0].items is None else np.concatenate([r.items for r in runs])
    return GraphRun(items, np.concatenate([r.scores for r in runs]))


def topk_agreement(found: np.ndarray, expected: np.ndarray) -> float:
    """Mean over users of |found ∩ expected| / k, for [users, k] item lists."""
    k = expected.shape[1]
    shared = [len(np.intersect1d(f, e)) for f, e in zip(found, expected, strict=True)]
    return float(np.mean(shared) / k)


def _scores_session(path: Path):
    """A session on the graph with TopK's input, every item's score, as an extra output."""
    import onnx

    model = onnx.load(str(path))
    topk = [node for node in model.graph.node if node.op_type == "TopK"]
    if not topk:  # a scores-only graph already returns every score
        return open_session(Path(path))
    if len(topk) != 1:
        raise ExportError(f"{path}: expected one TopK node, found {len(topk)}")
    tap = onnx.helper.make_tensor_value_info(topk[0].input[0], onnx.TensorProto.FLOAT, None)
    model.graph.output.append(tap)
    return open_session(model.SerializeToString())


def _run(session, users: np.ndarray) -> GraphRun:
    outputs = session.run(None, {INPUT: np.ascontiguousarray(users, dtype=np.int64)})
    if len(outputs) == 1:
        return GraphRun(None, outputs[0])
    return GraphRun(outputs[0], outputs[2])


def _returned(run: GraphRun, k: int) -> np.ndarray:
    return run.items if run.items is not None else _top_k(run.scores, k)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    return top_k(scores, min(k, scores.shape[1]))


def _mask_seen(scores: np.ndarray, users: np.ndarray, dataset: SplitDataset) -> np.ndarray:
    train = dataset.train
    rows, cols = CSR(train.users, train.items, dataset.n_users).gather(users)
    scores = scores.copy()
    scores[rows, cols] = -np.inf
    return scores


def _max_abs_delta(found: np.ndarray, expected: np.ndarray) -> float:
    """Largest |difference|; an item -inf on one side only counts as an infinite one."""
    found, expected = found.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(found) & np.isfinite(expected)
    same_inf = ~finite & (found == expected)
    diff = np.abs(np.where(finite, found, 0.0) - np.where(finite, expected, 0.0))
    return float(np.where(finite | same_inf, diff, np.inf).max())


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2e}" if value != 0 and abs(value) < 1e-2 else f"{value:.4f}"
