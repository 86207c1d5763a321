"""Figures of a benchmark: Recall@K against latency and against model size, frontier marked.

    OUT/recall_vs_latency.png   one panel per batch size, at the fewest threads measured
    OUT/recall_vs_size.png      one point per export (size does not depend on the settings)

Each figure draws the onnxruntime rows as points, eager PyTorch rows (with --against-torch)
as crosses, and joins the onnxruntime rows on the Pareto frontier (`edgerec.bench.pareto`).
matplotlib is the optional extra `plot`; without it `plot_results` raises a BenchError that
says how to install it, and everything else of the benchmark still works.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from edgerec.bench.pareto import frontier_rows
from edgerec.errors import BenchError

log = logging.getLogger(__name__)

LATENCY, SIZE = "recall_vs_latency.png", "recall_vs_size.png"
INSTALL = "pip install 'edgerec[plot]'"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_results(rows: list[dict], out: Path, k: int) -> list[Path]:
    """Write both figures into `out`; returns their paths."""
    if not available():
        raise BenchError(f"--plot needs matplotlib, which is not installed: {INSTALL}")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    metric = f"recall@{k}"
    measured = [r for r in rows if r["model"] != "floor" and r.get(metric) is not None]
    if not measured:
        raise BenchError(f"nothing to plot: no row has {metric} (see each row's accuracy_note)")
    out = Path(out)
    paths = [
        _latency_figure(plt, measured, metric, out / LATENCY),
        _size_figure(plt, measured, metric, out / SIZE),
    ]
    log.info("wrote %s", ", ".join(map(str, paths)))
    return paths


def _latency_figure(plt, rows: list[dict], metric: str, path: Path) -> Path:
    threads = min(r["threads"] for r in rows)
    batches = sorted({r["batch"] for r in rows})
    figure, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        chosen = [r for r in rows if r["batch"] == batch and r["threads"] == threads]
        _panel(ax, chosen, lambda r: r["latency_ms"]["p50"], metric)
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency per call (ms, log)")
        ax.set_title(f"batch {batch}, {threads} thread{'s' if threads > 1 else ''}")
    axes[0][0].set_ylabel(metric)
    return _save(plt, figure, path)


def _size_figure(plt, rows: list[dict], metric: str, path: Path) -> Path:
    first = {}
    for r in rows:  # one point per (model, runtime): size is the same at every setting
        first.setdefault((r["model"], r["runtime"]), r)
    figure, ax = plt.subplots(figsize=(5, 4))
    _panel(ax, list(first.values()), lambda r: r["model_bytes"] / 2**20, metric)
    ax.set_xscale("log")
    ax.set_xlabel("model file (MiB, log)")
    ax.set_ylabel(metric)
    ax.set_title("accuracy against size")
    return _save(plt, figure, path)


def _panel(ax, rows: list[dict], cost, metric: str) -> None:
    onnx = [r for r in rows if r["runtime"] == "onnxruntime"]
    eager = [r for r in rows if r["runtime"] == "torch"]
    ax.scatter([cost(r) for r in onnx], [r[metric] for r in onnx], label="onnxruntime")
    if eager:
        ax.scatter(
            [cost(r) for r in eager], [r[metric] for r in eager], marker="x", label="eager PyTorch"
        )
    for r in onnx:
        ax.annotate(
            f"{r['model']} {r['precision']}",
            (cost(r), r[metric]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front = frontier_rows(onnx, cost, metric)
    ax.step(
        [cost(r) for r in front],
        [r[metric] for r in front],
        where="post",
        linestyle="--",
        label="Pareto frontier",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(plt, figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
