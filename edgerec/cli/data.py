"""`edgerec data`: inspect a dataset and download the public ones."""

from __future__ import annotations

from pathlib import Path

import typer

from edgerec.cli import options as o
from edgerec.cli import render
from edgerec.data.config import Format

app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)


@app.command("info")
def info(
    path: str = typer.Argument(..., help="A ratings file, a pre-split folder, or 'synthetic'."),
    format: Format = o.FORMAT,
    split: o.Split = o.SPLIT,
    seed: int = o.SEED,
    rating_threshold: float = o.THRESHOLD,
    kcore: int = o.KCORE,
    json: bool = o.JSON,
) -> None:
    """Users, items, interactions, density and split sizes."""
    from edgerec.config import from_dict
    from edgerec.data import DataConfig, load_dataset

    flags = o.overrides(
        source=path, format=format, split=split, rating_threshold=rating_threshold, kcore=kcore
    )
    data = flags.get("data", {})
    if seed is not None:
        data["seed"] = seed
    summary = load_dataset(from_dict(DataConfig, data, where="data")).summary()
    if json:
        render.json_out(summary)
        return
    render.table(f"dataset {summary['name']}", ["property", "value"], summary.items())


@app.command("download")
def download(
    name: str = typer.Argument(..., help="ml-100k or ml-1m."),
    cache: Path = typer.Option(None, "--cache", help="Cache folder (default ~/.cache/edgerec)."),
) -> None:
    """Fetch a GroupLens archive, verify its checksum and cache it; prints the ratings path."""
    from edgerec.data.download import download as fetch

    render.out.print(str(fetch(name, cache)))
