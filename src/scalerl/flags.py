"""Command-line options made from config dataclasses: one Typer option per field, its help the field's docstring.

A command declares a parameter that receives ``{field: value}`` for a config, and :func:`with_field_options`
replaces that parameter, in the signature Typer reads, by one option per field::

    def train(ctx: typer.Context, train_fields: dict, resume: bool = typer.Option(False, "--resume")) -> None:
        config = TrainConfig(**train_fields)

    command = with_field_options(train_fields=TrainConfig)(train)  # --agent, --env, ..., --validate/--no-validate

Each option is ``--field-name`` (``--field-name/--no-field-name`` for a bool), typed by the field's annotation,
defaulting to the field's default (required when it has none), with the docstring written under the field
(:func:`scalerl.overrides.field_help`) as its help.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping

import typer

from scalerl.overrides import field_help

_OPTION_TYPES = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class FieldOptions:
    """Which fields of a config dataclass become options, and the flag names that differ from the field names.

    Attributes:
        config_cls: the (frozen) config dataclass.
        fields: the fields that get an option, in this order (``None``: every field, in declaration order).
        flag_names: ``{field: flag name}`` where the flag is not the field's name, e.g. ``{"critic_type": "critic"}``
            for ``--critic``.
    """

    config_cls: type
    fields: tuple[str, ...] | None = None
    flag_names: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _option_type(annotation, where: str):
    """The annotation, if Typer parses it as one option's value: bool, int, float or str, optionally ``| None``."""
    inner = annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner, *rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if rest:
            inner = None
    if inner not in _OPTION_TYPES:
        raise TypeError(f"{where}: {annotation} cannot be one command-line option (only bool, int, float, str)")
    return annotation


def field_options(spec: FieldOptions | type) -> list[inspect.Parameter]:
    """One keyword-only parameter per field of ``spec``, its default a ``typer.Option`` made from the field.

    Args:
        spec: a config dataclass (all its fields) or a :class:`FieldOptions`.

    Returns:
        Parameters named as the fields, annotated with the fields' types, with defaults
        ``typer.Option(field default or ..., "--flag-name", help=field docstring)``; a bool field's flag is
        ``--flag-name/--no-flag-name``.

    Raises:
        TypeError: a field is unknown, has no docstring, or has a type other than bool, int, float, str (or one of
            those or None).
    """
    if not isinstance(spec, FieldOptions):
        spec = FieldOptions(spec)
    config_cls = spec.config_cls
    by_name = {field.name: field for field in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    docs = field_help(config_cls)
    parameters = []
    for name in spec.fields if spec.fields is not None else tuple(by_name):
        where = f"{config_cls.__name__}.{name}"
        if name not in by_name:
            raise TypeError(f"{where}: not a field")
        if not docs.get(name):
            raise TypeError(f"{where}: no docstring to use as help")
        field = by_name[name]
        annotation = _option_type(hints[name], where)
        flag = "--" + spec.flag_names.get(name, name).replace("_", "-")
        declaration = f"{flag}/--no-{flag[2:]}" if annotation is bool else flag
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = ...
        option = typer.Option(default, declaration, help=docs[name])
        parameters.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        )
    return parameters


def with_field_options(**groups: FieldOptions | type) -> Callable[[Callable], Callable]:
    """Decorator: each parameter named in ``groups`` becomes one option per field; the command gets ``{field: value}``.

    Args:
        groups: ``parameter name -> config dataclass or FieldOptions``. The parameter stands, in the command's
            signature, where its options go (so ``--help`` lists them there).

    Returns:
        A decorator giving a wrapper whose ``inspect.Signature`` (which Typer reads) has the options in place of the
        grouped parameters, and which calls the command with each group's values collected into a dict.

    Raises:
        TypeError: a grouped parameter is missing from the command, or two options would share a name.
    """

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        missing = set(groups) - set(signature.parameters)
        if missing:
            raise TypeError(f"{command.__name__}: no parameter {sorted(missing)} to replace with field options")
        members: dict[str, list[str]] = {}
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name in groups:
                options = field_options(groups[parameter.name])
                members[parameter.name] = [option.name for option in options]
                parameters.extend(options)
            else:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        names = [parameter.name for parameter in parameters]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise TypeError(f"{command.__name__}: more than one parameter named {repeated}")

        @functools.wraps(command)
        def with_options(**values):
            for group, fields in members.items():
                values[group] = {field: values.pop(field) for field in fields}
            return command(**values)

        with_options.__signature__ = signature.replace(parameters=parameters)
        with_options.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not p.empty}
        return with_options

    return decorate
