"""``scalerl online``: train SAC online with a controllable updates-to-data ratio."""

from __future__ import annotations

import typer

from scalerl.errors import ScalerlError


def sac_help() -> str:
    """Every ``--agent.FIELD`` flag of ``SACConfig``, one paragraph each (the epilog of ``scalerl online --help``)."""
    from scalerl.online.sac import SACConfig
    from scalerl.overrides import describe

    return f"Agent fields ({SACConfig.__name__}):\n\n" + describe(SACConfig).replace("\n", "\n\n")


def online(
    ctx: typer.Context,
    loop_fields: dict,
    agent_fields: dict,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train SAC online (Gymnasium MuJoCo or DMC) with UTD, batch size, learning rate and critic size as flags.

    Set any SAC field with --agent.FIELD VALUE (listed below); giving both --agent.FIELD and the named flag of the
    same field (--agent.critic-type and --critic, --agent.lr and --lr, ...) is an error.
    """
    from scalerl.online.loop import OnlineConfig, run_online
    from scalerl.online.sac import SACConfig
    from scalerl.overrides import build_config, parse_overrides

    config = OnlineConfig(**loop_fields)
    overrides = parse_overrides(SACConfig, list(ctx.args))
    for name in sorted(overrides.keys() & agent_fields.keys()):
        if ctx.get_parameter_source(name).name == "COMMANDLINE":  # not the named flag's default
            flag = SACConfig.NAMED_FLAGS[name]
            raise ScalerlError(f"--agent.{name.replace('_', '-')} and {flag} both set {name}; give one of them")
    agent_config = build_config(SACConfig, {**agent_fields, **overrides})
    run_dir = run_online(config, agent_config, resume=resume, progress=progress)
    typer.echo(_summary(run_dir))


def online_command():
    """:func:`online` with one option per ``OnlineConfig`` field and per named ``SACConfig`` field.

    Building it imports the configs' modules and so JAX; ``scalerl.cli`` builds it only when ``online`` is asked for.
    """
    from scalerl.flags import FieldOptions, with_field_options
    from scalerl.online.loop import OnlineConfig
    from scalerl.online.sac import SACConfig

    # The SAC fields with a named flag besides --agent.FIELD (SACConfig.NAMED_FLAGS, e.g. critic_type: --critic).
    named = SACConfig.NAMED_FLAGS
    agent_options = FieldOptions(SACConfig, fields=tuple(named), flag_names={f: flag[2:] for f, flag in named.items()})
    return with_field_options(loop_fields=OnlineConfig, agent_fields=agent_options)(online)


def _summary(run_dir: str) -> str:
    """One line: the last evaluation's mean return over seeds and where the run's files are."""
    import os

    from scalerl.runs import EVAL_FILE, read_jsonl

    rows = read_jsonl(os.path.join(run_dir, EVAL_FILE))
    last = [row["return"] for row in rows if rows and row["step"] == rows[-1]["step"]]
    result = f"eval return {sum(last) / len(last):.1f} at step {rows[-1]['step']}; " if last else ""
    return f"done: {result}run directory {run_dir} (config.json, eval.jsonl, metrics.jsonl, curves.png, checkpoints/)"
