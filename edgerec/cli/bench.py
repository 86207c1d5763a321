"""`edgerec bench`: latency, memory, size and accuracy of exports under onnxruntime."""

from __future__ import annotations

import datetime
from contextlib import contextmanager
from pathlib import Path

import typer

from edgerec.bench.config import BenchConfig, Device
from edgerec.cli import render
from edgerec.errors import BenchError

RESULTS = Path("benchmarks") / "results"
# (warm-up, timed) calls per setting unless asked: emulation runs 10-50x slower, and its
# latencies mean little anyway (see edgerec.bench.run.run_on_arm64).
_CALLS = {Device.cpu: (10, 100), Device.arm64: (3, 20)}
_EMULATED_NOTE = (
    "note: emulated under qemu: the latencies say nothing about a real ARM core; outputs, "
    "accuracy and the int8 kernels are the aarch64 onnxruntime's"
)


def command(
    exports: list[Path] = typer.Argument(..., help="Export directories (from edgerec export)."),
    device: Device = typer.Option(Device.cpu, "--device", help="Where to run the exports."),
    threads: str = typer.Option("1,2", "--threads", help="onnxruntime/torch threads, e.g. 1,4."),
    batch: str = typer.Option("1,64", "--batch", help="Users per call, comma separated."),
    warmup: int = typer.Option(
        None, "--warmup", help="Untimed calls before timing (10; 3 on --device arm64)."
    ),
    runs: int = typer.Option(None, "--runs", help="Timed calls per setting (100; 20 on arm64)."),
    against_torch: bool = typer.Option(
        False, "--against-torch", help="Also time the run each export came from in PyTorch."
    ),
    arena: bool = typer.Option(
        True, "--arena/--no-arena", help="onnxruntime's CPU memory arena (faster, more memory)."
    ),
    memory: bool = typer.Option(
        True, "--memory/--no-memory", help="Peak RSS, in a fresh process per row."
    ),
    k: int = typer.Option(10, "--k", help="Cut-off of Recall@K and NDCG@K."),
    out: Path = typer.Option(
        None, "--out", help="Results folder (default benchmarks/results/<timestamp>)."
    ),
    json: bool = typer.Option(False, "--json", help="Print bench.json instead of the table."),
    plot: bool = typer.Option(False, "--plot", help="Also draw recall vs latency and vs size."),
) -> None:
    """Benchmark EXPORTS: latency per call, throughput, peak memory, size and test accuracy."""
    from edgerec.bench.report import payload, write_report
    from edgerec.bench.run import expected_rows, run_bench

    default_warmup, default_runs = _CALLS[device]
    config = BenchConfig(
        exports=tuple(str(p) for p in exports),
        device=device.value,
        batches=_ints(batch, "--batch"),
        threads=_ints(threads, "--threads"),
        warmup=default_warmup if warmup is None else warmup,
        runs=default_runs if runs is None else runs,
        k=k,
        arena=arena,
        memory=memory,
        against_torch=against_torch,
    )
    out = out or RESULTS / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

    with _row_bar(expected_rows(config), enabled=not json) as on_row:
        result = run_bench(config, on_row=on_row)
    paths = write_report(out, result)

    if json:
        render.json_out(payload(result))
    else:
        _table(result.rows, k)
        typer.echo(f"results → {paths['json']}, {paths['csv'].name}", err=True)
    if result.rows and result.rows[0]["emulated"]:
        typer.echo(_EMULATED_NOTE, err=True)
    if plot:
        _plot(result.rows, out, k)


def _plot(rows: list[dict], out: Path, k: int) -> None:
    from edgerec.bench.plot import plot_results

    try:
        written = plot_results(rows, out, k)
    except BenchError as exc:
        # The results are written; a missing optional extra is a note, not a failure.
        typer.echo(f"plot skipped: {exc}", err=True)
        return
    typer.echo(f"plots → {', '.join(str(p) for p in written)}", err=True)


# Column: (header, value of a row). Values are formatted here, to a few significant digits,
# so that the table fits a terminal.
_SETTING_COLUMNS = (
    ("model", lambda r: r["model"]),
    ("runtime", lambda r: _RUNTIMES.get(r["runtime"], r["runtime"])),
    ("batch", lambda r: r["batch"]),
    ("thr", lambda r: r["threads"]),
    ("p50 ms", lambda r: _g(r["latency_ms"]["p50"])),
    ("p99 ms", lambda r: _g(r["latency_ms"]["p99"])),
    ("users/s", lambda r: f"{r['throughput']:,.0f}"),
    ("×floor", lambda r: _g(r["x_floor"])),
    ("/torch", lambda r: _g(r["vs_torch"])),
    ("MiB", lambda r: _g(r["peak_rss_mb"])),
    ("+MiB", lambda r: _g(r["rss_delta_mb"])),
)
_RUNTIMES = {"onnxruntime": "ort", "torch": "torch"}


def _table(rows: list[dict], k: int) -> None:
    """Two tables: per setting (latency, memory), then per model (size, work, accuracy)."""
    device = rows[0]["device"] + (" (emulated)" if rows[0]["emulated"] else "")
    render.table(
        f"bench on {device}: latency per call, peak RSS (MiB) and what the model adds",
        [name for name, _ in _SETTING_COLUMNS],
        [[value(r) for _, value in _SETTING_COLUMNS] for r in rows],
    )

    models = {}
    for r in rows:  # size, work and accuracy do not depend on batch or threads
        if r["model"] != "floor":
            models.setdefault((r["model"], r["runtime"]), r)
    render.table(
        "per model: file bytes, multiply-adds per query, test accuracy",
        [
            "model",
            "runtime",
            "precision",
            "bytes",
            "MACs",
            "session ms",
            f"recall@{k}",
            f"ndcg@{k}",
        ],
        [
            [
                r["model"],
                _RUNTIMES.get(r["runtime"]),
                r["precision"],
                r["model_bytes"],
                r["macs"],
                _g(r["session_ms"]),
                _g(r[f"recall@{k}"], 4) or "n/a",
                _g(r[f"ndcg@{k}"], 4),
            ]
            for r in models.values()
        ],
    )


def _g(value: float | None, digits: int = 3) -> str | None:
    if value is None:
        return None
    return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


@contextmanager
def _row_bar(total: int, *, enabled: bool):
    """A progress bar over the rows on stderr; yields the `on_row` callback."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("bench"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=render.err, transient=True) as progress:
        task = progress.add_task("bench", total=total, last="")

        def on_row(row: dict) -> None:
            last = f"{row['model']} {row['runtime']} batch {row['batch']} × {row['threads']}"
            progress.update(task, advance=1, last=last)

        yield on_row


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise BenchError(
            f"{flag} expects integers >= 1 separated by commas, such as 1,64: got '{text}'"
        )
    return values
