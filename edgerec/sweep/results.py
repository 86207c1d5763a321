"""The table of a sweep: one row per cell, read back from its units' records.

A row carries the cell's coordinates (role, size, method, seed, precision, device), its status
(`ok`, `pending`, `failed` or `skipped`, with the stage and error of the first unit that is not
ok), and what its units measured: the student's parameters and its run's test Recall@K, the
bundle's file bytes and path, and from the benchmark the headline figures, batch 1 at the fewest
threads measured: p50 and p90 latency per call, peak RSS, whether the device was emulated
(its latencies then say nothing about the real hardware), and Recall@K and NDCG@K of the bundle
itself on the test split (`recall`, `ndcg`), which budgets are checked against.
"""

from __future__ import annotations

from edgerec.sweep.config import FP32
from edgerec.sweep.grid import TEACHER, Cell, Grid
from edgerec.sweep.record import OK, Record
from edgerec.sweep.selection import Reference
from edgerec.train.rundir import Run

PENDING = "pending"
COLUMNS = (
    "cell",
    "role",
    "size",
    "dim",
    "layers",
    "method",
    "seed",
    "precision",
    "device",
    "status",
    "stage",
    "error",
    "params",
    "bytes",
    "latency_ms",
    "latency_p90_ms",
    "peak_rss_mb",
    "emulated",
    "k",
    "recall",
    "ndcg",
    "run_recall",
    "accuracy_note",
    "bundle",
)


def table(grid: Grid, records: dict[str, Record | None], teacher: Run, k: int) -> list[dict]:
    rows = [cell_row(cell, records, k) for cell in grid.cells]
    teacher_recall = teacher.metrics.get("test", {}).get(f"recall@{k}")
    for row in rows:
        if row["role"] == TEACHER:
            row["run_recall"] = teacher_recall
    return rows


def cell_row(cell: Cell, records: dict[str, Record | None], k: int) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(
        cell=cell.id,
        role=cell.role,
        size=cell.size,
        dim=cell.dim,
        layers=cell.layers,
        method=cell.method,
        seed=cell.seed,
        precision=cell.precision,
        device=cell.device,
        status=OK,
        k=k,
    )
    for unit_id in cell.units:
        record = records.get(unit_id)
        if record is None:
            row.update(status=PENDING, stage=_kind(unit_id, cell))
            break
        if record.status != OK:
            error = record.error or {}
            message = f"{error.get('type', '?')}: {error.get('message', '')}"
            row.update(status=record.status, stage=record.kind, error=message)
            break
        _fill(row, record, k)
    return row


def headline(rows: list[dict]) -> dict | None:
    """The benchmark row budgets use: batch 1, at the fewest threads measured."""
    at_one = [r for r in rows if r["batch"] == 1]
    return min(at_one, key=lambda r: r["threads"], default=None)


def reference_of(rows: list[dict], teacher: Run, device: str, k: int) -> Reference:
    """The teacher's figures on `device`: its fp32 cell, or its run where that is missing."""
    fp32 = [r for r in rows if r["role"] == TEACHER and r["precision"] == FP32]
    cell = next((r for r in fp32 if r["device"] == device), None)
    run_recall = teacher.metrics.get("test", {}).get(f"recall@{k}")
    measured = cell is not None and cell["recall"] is not None
    return Reference(
        recall=cell["recall"] if measured else run_recall,
        latency_ms=None if cell is None else cell["latency_ms"],
        bytes=cell["bytes"] if cell is not None and cell["bytes"] else teacher.metrics.get("bytes"),
        recall_source=f"{cell['cell']} bundle" if measured else "the teacher run's test split",
    )


def bench_rows(grid: Grid, records: dict[str, Record | None], device: str) -> list[dict]:
    """Every benchmark row measured on `device`, each labelled with its export's id."""
    rows = []
    for unit in grid.of_kind("bench"):
        record = records.get(unit.id)
        if unit.device == device and record is not None and record.ok:
            rows += record.result["rows"]
    return rows


def _fill(row: dict, record: Record, k: int) -> None:
    result = record.result or {}
    if record.kind == "distill":
        row.update(params=result.get("params"), run_recall=result["test"].get(f"recall@{k}"))
    elif record.kind == "export":
        row.update(bytes=result["bytes"], bundle=result["bundle"], params=result["params"])
    else:
        best = headline(result["rows"])
        if best is None:
            return
        row.update(
            latency_ms=best["latency_ms"]["p50"],
            latency_p90_ms=best["latency_ms"]["p90"],
            peak_rss_mb=best.get("peak_rss_mb"),
            emulated=best.get("emulated"),
            recall=best.get(f"recall@{k}"),
            ndcg=best.get(f"ndcg@{k}"),
            accuracy_note=best.get("accuracy_note"),
        )


def _kind(unit_id: str, cell: Cell) -> str:
    depth = unit_id.count("/")
    if cell.role == TEACHER:
        return "export" if depth == 1 else "bench"
    return ("distill", "export", "bench")[depth]
