"""Options made from config dataclasses: names, types, defaults, bool flags and help text from field docstrings."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from scalerl.flags import FieldOptions, field_options, with_field_options


@dataclasses.dataclass(frozen=True)
class Example:
    """A config with one field of each kind an option can take."""

    name: str
    """Name of the ``thing``."""
    steps: int = 3
    """Steps to take."""
    rate: float = 0.5
    """Step size."""
    verbose: bool = False
    """Print more."""
    project: str | None = None
    """Optional project."""


@dataclasses.dataclass(frozen=True)
class WithTuple:
    sizes: tuple[int, ...] = (1, 2)
    """Layer sizes."""


@dataclasses.dataclass(frozen=True)
class Undocumented:
    size: int = 1


def _by_name(spec) -> dict[str, inspect.Parameter]:
    return {parameter.name: parameter for parameter in field_options(spec)}


def test_one_option_per_field_with_type_default_and_help():
    options = _by_name(Example)
    assert list(options) == ["name", "steps", "rate", "verbose", "project"]
    assert all(option.kind is inspect.Parameter.KEYWORD_ONLY for option in options.values())
    assert [options[name].annotation for name in options] == [str, int, float, bool, str | None]
    defaults = {name: option.default for name, option in options.items()}
    assert [defaults[name].default for name in ("name", "steps", "rate", "verbose", "project")] == [
        ...,
        3,
        0.5,
        False,
        None,
    ]
    assert defaults["steps"].param_decls == ("--steps",)
    assert defaults["verbose"].param_decls == ("--verbose/--no-verbose",)
    # The field's docstring is the help, with reStructuredText's ``code`` written as `code`.
    assert defaults["name"].help == "Name of the `thing`."
    assert defaults["rate"].help == "Step size."


def test_a_subset_of_fields_in_the_given_order_under_other_flag_names():
    options = _by_name(FieldOptions(Example, fields=("rate", "name"), flag_names={"rate": "lr"}))
    assert list(options) == ["rate", "name"]
    assert options["rate"].default.param_decls == ("--lr",)


@pytest.mark.parametrize(
    "spec, message",
    [
        (WithTuple, r"WithTuple\.sizes: .* cannot be one command-line option"),
        (Undocumented, r"Undocumented\.size: no docstring"),
        (FieldOptions(Example, fields=("nope",)), r"Example\.nope: not a field"),
    ],
)
def test_fields_that_cannot_be_options_are_refused(spec, message):
    with pytest.raises(TypeError, match=message):
        field_options(spec)


def _example_command(captured: dict):
    def command(example: dict, extra: int = typer.Option(1, help="Not a field.")) -> None:
        """Run the example."""
        captured.update(example=example, extra=extra)

    app = typer.Typer(add_completion=False)
    app.command("run")(with_field_options(example=FieldOptions(Example, flag_names={"steps": "n"}))(command))
    app.command("other")(lambda: None)
    return app


def test_typer_parses_the_options_into_the_group_dict():
    captured = {}
    app = _example_command(captured)
    result = CliRunner().invoke(app, ["run", "--name", "x", "--n", "7", "--verbose", "--project", "p", "--extra", "2"])
    assert result.exit_code == 0, result.output
    assert captured == {"example": {"name": "x", "steps": 7, "rate": 0.5, "verbose": True, "project": "p"}, "extra": 2}
    assert Example(**captured["example"]).steps == 7
    result = CliRunner().invoke(app, ["run", "--name", "x", "--no-verbose"])
    assert result.exit_code == 0 and captured["example"]["verbose"] is False


def test_help_lists_the_options_with_docstrings_and_a_missing_required_one_fails():
    app = _example_command({})
    help_text = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output
    for text in ("--name", "Name of the `thing`.", "--n ", "Steps to take.", "--no-verbose", "--extra", "Not a field."):
        assert text in help_text
    assert help_text.index("--name") < help_text.index("--extra")  # the options stand where the group parameter did
    missing = CliRunner().invoke(app, ["run"])
    assert missing.exit_code == 2 and "--name" in missing.output


def test_wrapping_refuses_a_missing_group_or_a_repeated_name():
    def command(example: dict, steps: int = 1) -> None:
        """Run."""

    with pytest.raises(TypeError, match="no parameter"):
        with_field_options(other=Example)(command)
    with pytest.raises(TypeError, match="more than one parameter named"):
        with_field_options(example=Example)(command)


def test_the_cli_imports_no_config_module_until_train_or_online_runs():
    # The configs' modules import JAX; `scalerl --help` and the other commands should not wait for it.
    code = (
        "import sys; from typer.testing import CliRunner; from scalerl.cli import app; "
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
        "assert 'jax' not in sys.modules and 'scalerl.offline.loop' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
