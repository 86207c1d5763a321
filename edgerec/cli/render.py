"""Rendering for the CLI: rich tables on stdout, diagnostics on stderr.

The only module of the CLI that knows about rich's objects, so every command's output looks
the same and stays easy to change in one place.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

# Piped output has no terminal width and rich would fold tables to 80 columns, cutting numbers;
# a wide fixed width keeps them whole in logs and CI output.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def json_out(payload) -> None:
    # Plain print: rich would wrap long lines and break the JSON for pipes.
    print(json.dumps(payload, indent=2))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence], *, console=out) -> None:
    t = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        t.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[fmt(v) for v in row])
    console.print(t)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def metrics_table(title: str, metrics: dict, *, extra: dict | None = None) -> None:
    """One row per split and metric, one column per cut-off K: metrics.json, readable."""
    names = list(metrics["test"])
    kinds = list(dict.fromkeys(n.split("@")[0] for n in names))
    ks = list(dict.fromkeys(n.split("@")[1] for n in names))
    rows = [
        [f"{split} {kind}"] + [metrics[split].get(f"{kind}@{k}") for k in ks]
        for split in ("valid", "test")
        for kind in kinds
    ]
    table(title, ["", *[f"@{k}" for k in ks]], rows)
    if extra:
        out.print("  ".join(f"[bold]{k}[/bold] {fmt(v)}" for k, v in extra.items()))


def check_line(ok: bool, text: str) -> None:
    mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
    err.print(f"{mark} {text}")
