"""The ``scalerl`` command line: one Typer app, one subcommand per job.

Each subcommand lives beside the code it drives (``scalerl/<module>_cli.py`` style functions) and is registered
here. A :class:`scalerl.envs.ScalerlError` raised anywhere becomes a one-line ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from scalerl.envs import ScalerlError
from scalerl.generate.command import generate
from scalerl.info import info

app = typer.Typer(
    name="scalerl",
    help="scalerl: generate OGBench datasets, train offline/online RL agents, fit scaling laws.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("generate")(generate)
app.command("info")(info)


def main() -> None:
    """Entry point of the ``scalerl`` console script."""
    try:
        app()
    except ScalerlError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
