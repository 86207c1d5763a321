"""`edgerec sweep`: distill, export and benchmark a grid of students; pick the smallest within
budget."""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer

from edgerec.bench.config import Device
from edgerec.cli import render

RUNS = Path("runs") / "sweeps"


class Executor(StrEnum):
    local = "local"
    ray = "ray"


def command(
    config: Path = typer.Option(
        ..., "--config", help="A sweep preset such as configs/sweeps/quick."
    ),
    out: Path = typer.Option(
        None, "--out", help="Sweep directory (default runs/sweeps/NAME); a rerun continues it."
    ),
    workers: int = typer.Option(
        None, "--workers", help="Distillations and exports at once (default min(2, cores))."
    ),
    executor: Executor = typer.Option(
        Executor.local, "--executor", help="Worker processes here, or Ray tasks."
    ),
    teacher: Path = typer.Option(
        None, "--teacher", help="A finished run to use as the teacher instead of training one."
    ),
    min_recall: str = typer.Option(
        None, "--min-recall", help="Recall@K at least: 0.33 absolute, 0.9x times the teacher's."
    ),
    max_latency_ms: str = typer.Option(
        None, "--max-latency-ms", help="p50 ms per call at batch 1: 2.5, or 0.5x the teacher's."
    ),
    max_bytes: str = typer.Option(
        None, "--max-bytes", help="Model file bytes: 65536, or 0.1x the teacher's fp32 file."
    ),
    device: Device = typer.Option(None, "--device", help="The device the budget is for."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Redo the cells a previous run recorded as failed."
    ),
    json: bool = typer.Option(False, "--json", help="Print results.json instead of the tables."),
) -> None:
    """Sweep student sizes × methods × precisions × devices and choose the smallest in budget."""
    from edgerec.sweep.config import load_sweep, with_overrides
    from edgerec.sweep.job import run_sweep

    sweep = with_overrides(
        load_sweep(config),
        teacher_run=teacher,
        min_recall=min_recall,
        max_latency_ms=max_latency_ms,
        max_bytes=max_bytes,
        device=device.value if device else None,
    )
    out = out or RUNS / sweep.name
    given = {
        "--config": config,
        "--out": out,
        "--workers": workers,
        "--executor": None if executor is Executor.local else executor.value,
        "--teacher": teacher,
        "--min-recall": min_recall,
        "--max-latency-ms": max_latency_ms,
        "--max-bytes": max_bytes,
        "--device": device.value if device else None,
    }
    line = _command_line(given | {"--retry-failed": retry_failed or None})

    with _unit_bar(enabled=not json) as on_progress:
        result = run_sweep(
            sweep,
            out,
            executor=executor.value,
            workers=workers,
            on_progress=on_progress,
            retry_failed=retry_failed,
            command=line,
        )

    if json:
        from edgerec.sweep.report import results_payload

        report = {name: str(path) for name, path in result.report.items()}
        render.json_out(results_payload(result) | {"report": report})
        return
    _render(result)


def _command_line(given: dict) -> str:
    """The command as the report records it: the options given, in a fixed order."""
    words = ["edgerec sweep"]
    for flag, value in given.items():
        if value is True:
            words.append(flag)
        elif value is not None:
            words.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


def _render(result) -> None:
    k = result.config.bench.k
    selection = result.selection
    if selection is None:
        render.err.print(f"no selection: {result.selection_error}")
    else:
        for title, rows in (
            ("bytes", selection.frontier_bytes),
            ("latency", selection.frontier_latency),
        ):
            render.table(
                f"frontier on {selection.device}: Recall@{k} against {title}",
                ["cell", "bytes", "p50 ms", f"recall@{k}", f"ndcg@{k}"],
                [[r["cell"], r["bytes"], r["latency_ms"], r["recall"], r["ndcg"]] for r in rows],
            )
        for limit in selection.limits:
            render.out.print(f"budget: {limit.text}")
        chosen = selection.chosen
        if chosen is None:
            render.out.print(f"[bold]no cell meets the budget[/bold]: {selection.message}")
        else:
            render.out.print(
                f"[bold]chosen[/bold] {chosen['cell']}: {chosen['bytes']:,} bytes, "
                f"p50 {_g(chosen['latency_ms'])} ms, recall@{k} {_g(chosen['recall'])}"
            )
            render.out.print(f"bundle {Path(chosen['bundle']).resolve()}", soft_wrap=True)
            for r in selection.same_size:
                render.out.print(
                    f"  same size, also within budget: {r['cell']} ({r['bytes']:,} bytes, "
                    f"p50 {_g(r['latency_ms'])} ms, recall@{k} {_g(r['recall'])})"
                )

    problems = [r for r in result.rows if r["status"] in ("failed", "skipped", "pending")]
    if problems:
        render.err.print(f"{len(problems)} of {len(result.rows)} cells not ok: see the report")
    render.err.print(
        f"{len(result.executed)} units run, {len(result.kept)} kept; "
        f"report → {result.report['markdown']}",
        soft_wrap=True,
    )


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@contextmanager
def _unit_bar(*, enabled: bool):
    """A progress bar over the sweep's units on stderr; yields the `on_progress` callback."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("sweep"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=render.err, transient=True) as progress:
        task = progress.add_task("sweep", total=None, last="")

        def on_progress(event) -> None:
            if event.status in ("failed", "skipped"):
                progress.console.print(f"{event.status}: {event.unit}: {event.error}")
            last = f"{event.unit} {event.status}"
            progress.update(task, completed=event.done, total=event.total, last=last)

        yield on_progress
