"""`edgerec device`: prepare the device targets that exports are run and checked on."""

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Prepare the device targets that exports are run and checked on.",
    no_args_is_help=True,
)


class Target(StrEnum):
    """A device target `edgerec device` can prepare."""

    arm64 = "arm64"


@app.callback()
def _group() -> None:
    # A callback keeps `setup` a named subcommand while it is the only one.
    pass


@app.command()
def setup(
    target: Annotated[
        Target, typer.Argument(help="arm64: Debian AArch64 with the aarch64 onnxruntime, on qemu.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even if a current environment exists.")
    ] = False,
) -> None:
    """Build the TARGET environment once (minutes), then print where it is and what it holds."""
    from edgerec.targets import arm64

    with Console(stderr=True).status(f"preparing the {target.value} environment"):
        env = arm64.setup(force=force)
    manifest = env.manifest()

    table = Table(title=f"{target.value} environment", show_header=False)
    table.add_row("path", str(env.root))
    table.add_row("built", manifest["built"])
    table.add_row("system", f"Debian {manifest['suite']}, Python {manifest['python']}")
    for name in ("numpy", "onnxruntime"):
        table.add_row(name, manifest["packages"][name])
    table.add_row("emulation", f"qemu {manifest['qemu']}, cpu {manifest['qemu_cpu']}")
    Console().print(table)
