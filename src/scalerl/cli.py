"""The ``scalerl`` command line: one Typer app, one subcommand per job.

Each subcommand's function lives beside the code it drives and is registered here; ``train`` and ``online``, whose
options are made from config dataclasses in modules that import JAX, are built only when they are run. A
:class:`scalerl.errors.ScalerlError` raised anywhere becomes a one-line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer
import typer.core
import typer.main

from scalerl.compile_cache import configure_compile_cache
from scalerl.demo import demo
from scalerl.errors import ScalerlError
from scalerl.generate.command import generate
from scalerl.horizon.command import diagnose
from scalerl.horizon.study import horizon_study
from scalerl.info import info
from scalerl.offline.command import agent_help, evaluate_run, list_agents, train, train_command
from scalerl.offline.presets import list_presets
from scalerl.online.command import online, online_command, sac_help
from scalerl.scaling.commands import fit, report, sweep
from scalerl.store import pack_command

# Unknown options are left in ctx.args, where the command reads them as --agent.FIELD VALUE.
_KEEP_UNKNOWN_OPTIONS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _command(name: str, function, **settings) -> typer.core.TyperCommand:
    """The click command Typer makes of ``function`` registered as ``name`` with ``settings``."""
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name, **settings)(function)
    return typer.main.get_command(single)


def _train() -> typer.core.TyperCommand:
    """``scalerl train``; its ``--help`` ends with every agent's ``--agent.FIELD`` flags."""
    return _command("train", train_command(), epilog=agent_help(), context_settings=_KEEP_UNKNOWN_OPTIONS)


def _online() -> typer.core.TyperCommand:
    """``scalerl online``; its ``--help`` ends with SAC's ``--agent.FIELD`` flags."""
    return _command("online", online_command(), epilog=sac_help(), context_settings=_KEEP_UNKNOWN_OPTIONS)


_BUILT_WHEN_RUN = {"train": _train, "online": _online}


class _Group(typer.core.TyperGroup):
    """The ``scalerl`` group: lists every command, and builds one of ``_BUILT_WHEN_RUN`` only when it is run.

    So ``scalerl --help`` and the other commands do not wait for JAX to import.
    """

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name in _BUILT_WHEN_RUN:
            command = _BUILT_WHEN_RUN[name]()
        return name, command, rest


def _built_when_run() -> None:
    """Stands in, in the command list, for a command of ``_BUILT_WHEN_RUN``; never run."""


app = typer.Typer(
    name="scalerl",
    cls=_Group,
    help="scalerl: generate OGBench datasets, train offline/online RL agents, fit scaling laws.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    compile_cache: bool = typer.Option(
        True,
        "--compile-cache/--no-compile-cache",
        help="Keep JAX's compiled programs in ~/.cache/scalerl/jax so a repeated run starts faster "
        "(also SCALERL_COMPILE_CACHE=off|DIR).",
    ),
) -> None:
    """scalerl: generate OGBench datasets, train offline/online RL agents, fit scaling laws."""
    configure_compile_cache(compile_cache)


app.command("demo")(demo)
app.command("generate")(generate)
app.command("info")(info)
app.command("pack")(pack_command)
app.command("train", help=train.__doc__)(_built_when_run)
app.command("eval")(evaluate_run)
app.command("diagnose")(diagnose)
app.command("horizon-study")(horizon_study)
app.command("agents")(list_agents)
app.command("sweep")(sweep)
app.command("fit")(fit)
app.command("report")(report)
app.command("presets")(list_presets)
app.command("online", help=online.__doc__)(_built_when_run)


def main() -> None:
    """Entry point of the ``scalerl`` console script."""
    try:
        app()
    except ScalerlError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
