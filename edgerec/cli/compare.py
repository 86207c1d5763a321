"""`edgerec compare`: finished runs side by side (teacher and students)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgerec.cli import render


def command(
    runs: list[Path] = typer.Argument(..., help="Run directories."),
    k: str = typer.Option("10,20", "--k", help="Cut-offs to show, comma separated."),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare runs: size, method and test metrics."""
    from edgerec.train.rundir import open_run

    cutoffs = [c.strip() for c in k.split(",") if c.strip()]
    rows = []
    for path in runs:
        run = open_run(path)
        test = run.metrics["test"]
        row = {
            "run": str(path),
            "model": run.config.model.name,
            "dim": run.config.model.dim,
            "method": run.metrics.get("method", "teacher" if run.config.teacher is None else "?"),
            "params": run.metrics["params"],
            "compression": f"{run.metrics.get('compression', 1.0):.1f}x",
        }
        for c in cutoffs:
            row[f"recall@{c}"] = test.get(f"recall@{c}")
            row[f"ndcg@{c}"] = test.get(f"ndcg@{c}")
        row["epoch s"] = run.metrics.get("epoch_seconds_median")
        rows.append(row)
    if json:
        render.json_out(rows)
        return
    render.table("test split, full ranking", list(rows[0]), [list(r.values()) for r in rows])
