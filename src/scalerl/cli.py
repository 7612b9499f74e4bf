"""The ``scalerl`` command line: one Typer app, one subcommand per job.

Each subcommand's function lives beside the code it drives and is registered here. A
:class:`scalerl.envs.ScalerlError` raised anywhere becomes a one-line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer
import typer.core

from scalerl.demo import demo
from scalerl.errors import ScalerlError
from scalerl.generate.command import generate
from scalerl.info import info
from scalerl.offline.command import agent_help, evaluate_run, list_agents, train
from scalerl.offline.presets import list_presets
from scalerl.online.command import online
from scalerl.scaling.commands import fit, report, sweep


class _AgentFieldsEpilog(typer.core.TyperCommand):
    """``scalerl train --help`` lists every ``--agent.FIELD``; built only when help is shown (it imports JAX)."""

    def format_help(self, ctx, formatter):
        self.epilog = agent_help()
        return super().format_help(ctx, formatter)


app = typer.Typer(
    name="scalerl",
    help="scalerl: generate OGBench datasets, train offline/online RL agents, fit scaling laws.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo)
app.command("generate")(generate)
app.command("info")(info)
app.command(
    "train",
    cls=_AgentFieldsEpilog,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(train)
app.command("eval")(evaluate_run)
app.command("agents")(list_agents)
app.command("sweep")(sweep)
app.command("fit")(fit)
app.command("report")(report)
app.command("presets")(list_presets)
app.command("online")(online)


def main() -> None:
    """Entry point of the ``scalerl`` console script."""
    try:
        app()
    except ScalerlError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
