"""A rich progress bar for epochs, on stderr, showing the loss and the validation metric."""

from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from edgerec.cli.render import err


@contextmanager
def epoch_bar(total: int, label: str, metric: str, *, enabled: bool = True):
    """Yields an `on_epoch(record)` callback for `edgerec.train.loop.fit`."""
    if not enabled:
        yield None
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total, status="")

        def on_epoch(record: dict) -> None:
            status = f"loss {record['loss']:.4g}"
            if metric in record:
                status += f"  {metric} {record[metric]:.4f}"
            progress.update(task, completed=record["epoch"], status=status)

        yield on_epoch
