"""The `edgerec` command: a Typer app whose commands live one per module in this package.

This module only assembles the commands and owns the error boundary: an `EdgerecError` (bad
input a user can fix) becomes one line on stderr and exit code 2; anything else is a bug and
keeps its traceback. Command modules import the library inside their functions, so that
`edgerec --help` does not pay for torch or onnxruntime.
"""

from __future__ import annotations

import logging
import sys

import typer

from edgerec.cli import bench, compare, data, device, distill, export, sweep, train
from edgerec.errors import EdgerecError

app = typer.Typer(
    name="edgerec",
    help="Distill recommenders into students small enough for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(train.command)
app.command("distill")(distill.command)
app.command("export")(export.command)
app.command("compare")(compare.command)
app.command("bench")(bench.command)
app.command("sweep")(sweep.command)
app.add_typer(data.app, name="data")
app.add_typer(device.app, name="device")


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log stages and timings to stderr."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    """The console script; `argv` (default: sys.argv[1:]) lets tests run it in-process."""
    try:
        app(args=argv, standalone_mode=False)
    except EdgerecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.TyperException as exc:
        # A usage error (unknown option, a value outside an Enum): one line, like ours.
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
