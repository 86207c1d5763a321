"""A sweep's report, in its directory, beside the config that produced it.

    SWEEP_DIR/report.md      the choice, both frontiers, every cell, failures, config, versions
    SWEEP_DIR/results.json   everything: config, teacher, sizes, selection, cells, versions
    SWEEP_DIR/results.csv    the cells, one row each (`edgerec.sweep.results.COLUMNS`)
    SWEEP_DIR/recall_vs_latency.png, recall_vs_size.png   with matplotlib (extra `plot`)

Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgerec import atomic
from edgerec.config import to_dict
from edgerec.errors import BenchError
from edgerec.sweep.results import COLUMNS

if TYPE_CHECKING:
    from edgerec.sweep.job import SweepResult

log = logging.getLogger(__name__)

MARKDOWN, JSON, CSV = "report.md", "results.json", "results.csv"


def write_report(result: SweepResult, plot_rows: list[dict]) -> dict[str, Path]:
    """Write the report files into the sweep's directory; returns their paths."""
    out = Path(result.out)
    payload = results_payload(result)
    paths = {"markdown": out / MARKDOWN, "json": out / JSON, "csv": out / CSV}
    plots, plot_note = _plots(plot_rows, out, result.config.bench.k)
    atomic.write_json(paths["json"], payload)
    atomic.write_bytes(paths["csv"], to_csv(result.rows).encode())
    atomic.write_bytes(paths["markdown"], markdown(result, payload, plots, plot_note).encode())
    paths.update({p.stem: p for p in plots})
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths


def results_payload(result: SweepResult) -> dict:
    from edgerec.export.bundle import library_versions

    teacher = result.teacher
    return {
        "sweep": result.config.name,
        "command": result.command,
        "complete": result.complete,
        "k": result.config.bench.k,
        "teacher": {
            "run": str(teacher.path),
            "model": teacher.config.model.name,
            "dim": teacher.config.model.dim,
            "params": teacher.metrics.get("params"),
            "test": teacher.metrics.get("test"),
        },
        "sizes": [
            {"id": s.id, "dim": s.dim, "layers": s.layers, "fraction": s.fraction}
            for s in result.grid.sizes
        ],
        "selection": None if result.selection is None else result.selection.to_dict(),
        "selection_error": result.selection_error,
        "cells": result.rows,
        "config": to_dict(result.config),
        "versions": library_versions(),
        "machine": result.machine,
    }


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row.get(key) for key in COLUMNS} for row in rows)
    return buffer.getvalue()


def markdown(result: SweepResult, payload: dict, plots: list[Path], plot_note: str | None) -> str:
    k = result.config.bench.k
    lines = [f"# Sweep `{result.config.name}`", ""]
    if result.command:
        lines += [f"Command: `{result.command}`", ""]
    pending = sum(row["status"] == "pending" for row in result.rows)
    lines += [
        f"{len(result.rows)} cells, {'complete' if not pending else f'{pending} still pending'}. "
        f"Recall@{k} and NDCG@{k} are the bundles' own, on the test split; latency is the p50 "
        "of one call at batch 1 at the fewest threads measured; bytes are the model file's.",
        "",
    ]
    lines += _teacher_section(payload["teacher"], k)
    lines += _selection_section(result, k)
    lines += _cells_section(result.rows, result.selection, k)
    lines += _failures_section(result.rows)
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    elif plot_note:
        lines += [f"Plots: {plot_note}.", ""]
    lines += [
        "## Configuration",
        "",
        "```json",
        json.dumps(payload["config"], indent=2),
        "```",
        "",
        "## Versions",
        "",
        ", ".join(f"{name} {version}" for name, version in payload["versions"].items()),
        "",
    ]
    machine = payload.get("machine") or {}
    if machine:
        flags = ", ".join(machine.get("flags") or []) or "none found"
        lines += [
            f"Machine: {machine.get('cpu')}, {machine.get('logical_cores')} logical cores "
            f"({machine.get('usable_cores')} usable); instruction sets: {flags}.",
            "",
        ]
    return "\n".join(lines)


def _teacher_section(teacher: dict, k: int) -> list[str]:
    test = teacher.get("test") or {}
    return [
        "## Teacher",
        "",
        f"{teacher['model']} dim {teacher['dim']}, {teacher['params']:,} parameters, "
        f"run test Recall@{k} {_f(test.get(f'recall@{k}'))} (`{teacher['run']}`).",
        "",
    ]


def _selection_section(result: SweepResult, k: int) -> list[str]:
    lines = ["## Budget and choice", ""]
    if result.selection is None:
        return lines + [f"No selection: {result.selection_error}", ""]
    selection = result.selection
    ref = selection.reference
    lines += [
        f"Device {selection.device}; teacher reference: Recall@{k} {_f(ref.recall)} "
        f"({ref.recall_source}), {_n(ref.bytes)} bytes, p50 {_f(ref.latency_ms)} ms.",
        "",
    ]
    if any(r.get("emulated") for r in result.rows if r["device"] == selection.device):
        lines += [
            f"{selection.device} is emulated here: its latencies say nothing about the real "
            "hardware, and a latency budget on it means little.",
            "",
        ]
    lines += [f"- {limit.text}" for limit in selection.limits] or ["- no budget: every cell meets"]
    lines.append("")
    chosen = selection.chosen
    if chosen is None:
        return lines + [f"**No cell meets the budget.** {selection.message}", ""]
    bundle = Path(chosen["bundle"]).resolve()
    lines += [
        f"**Chosen: `{chosen['cell']}`**: {chosen['bytes']:,} bytes, p50 "
        f"{_f(chosen['latency_ms'])} ms, Recall@{k} {_f(chosen['recall'])}; bundle `{bundle}`. "
        f"{len(selection.meeting)} of {selection.candidates} cells measured on "
        f"{selection.device} meet the budget.",
        "",
    ]
    if selection.same_size:
        lines += [
            "Also within budget at the same size (within 1% of its bytes; between such twins "
            "the latencies may differ by no more than the measurement noise):",
            "",
        ]
        lines += [
            f"- `{r['cell']}`: {r['bytes']:,} bytes, p50 {_f(r['latency_ms'])} ms, "
            f"Recall@{k} {_f(r['recall'])}"
            for r in selection.same_size
        ]
        lines.append("")
    return lines


def _cells_section(rows: list[dict], selection, k: int) -> list[str]:
    reference = None if selection is None else selection.reference
    on_latency = {r["cell"] for r in selection.frontier_latency} if selection else set()
    on_bytes = {r["cell"] for r in selection.frontier_bytes} if selection else set()
    header = (
        f"| cell | status | params | bytes | × teacher bytes | p50 ms | Recall@{k} | "
        f"× teacher recall | NDCG@{k} | run Recall@{k} | frontier |"
    )
    lines = ["## Cells", "", header, "|" + "---|" * 11]
    for r in sorted(rows, key=lambda r: (r["device"], r["bytes"] or 0, r["cell"])):
        marks = "".join(m for m, s in (("L", on_latency), ("B", on_bytes)) if r["cell"] in s)
        lines.append(
            f"| {r['cell']} | {r['status']} | {_n(r['params'])} | {_n(r['bytes'])} | "
            f"{_ratio(r['bytes'], reference and reference.bytes)} | {_f(r['latency_ms'])} | "
            f"{_f(r['recall'])} | {_ratio(r['recall'], reference and reference.recall)} | "
            f"{_f(r['ndcg'])} | {_f(r['run_recall'])} | {marks} |"
        )
    return lines + [
        "",
        "Frontier: L on the Recall/latency frontier, B on the Recall/bytes frontier "
        "(no other cell on the device is at least as good on both and better on one).",
        "",
    ]


def _failures_section(rows: list[dict]) -> list[str]:
    failed = [r for r in rows if r["status"] in ("failed", "skipped")]
    if not failed:
        return []
    lines = ["## Failed and skipped cells", ""]
    lines += [f"- `{r['cell']}` ({r['status']} at {r['stage']}): {r['error']}" for r in failed]
    return lines + [""]


def _plots(rows: list[dict], out: Path, k: int) -> tuple[list[Path], str | None]:
    from edgerec.bench import plot

    if not plot.available():
        return [], f"not drawn, matplotlib is not installed ({plot.INSTALL})"
    if not rows:
        return [], "not drawn, no cell was measured on the budget's device"
    try:
        return plot.plot_results(rows, out, k), None
    except BenchError as exc:
        return [], f"not drawn: {exc}"


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    return f"{value / reference:.3f}"
