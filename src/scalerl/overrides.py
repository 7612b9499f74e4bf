"""``--agent.FIELD VALUE`` overrides for frozen config dataclasses, and their help text.

Every field of an agent's config can be set on the command line: ``--agent.hidden-dims 256 256
--agent.batch-size 256 --agent.actor-loss awr``. Values are parsed by the field's annotated type (int, float,
bool, str, tuple of ints/floats). Help text comes from the string literal written under each field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing

from scalerl.errors import ScalerlError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field_docs(config_cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field (``field: T = default`` then ``\"\"\"doc\"\"\"``)."""
    docs: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, following in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant):
                    if isinstance(following.value.value, str):
                        docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def field_help(config_cls: type) -> dict[str, str]:
    """Each field's docstring as ``--help`` text: code quoted as `x` rather than reStructuredText's ``x``."""
    return {name: doc.replace("``", "`") for name, doc in field_docs(config_cls).items()}


def _parse_scalar(kind, text: str, flag: str):
    if kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ScalerlError(f"{flag}: expected true or false, got '{text}'")
    try:
        return kind(text)
    except ValueError:
        raise ScalerlError(f"{flag}: expected {kind.__name__}, got '{text}'") from None


def _field_types(config_cls: type) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def parse_overrides(config_cls: type, args: list[str], prefix: str = "--agent.") -> dict:
    """Parse ``[--agent.field-name v1 v2 ..., ...]`` into ``{field_name: value}`` for ``config_cls``.

    Raises:
        ScalerlError: an unknown field, a missing value, or a value of the wrong type (one line, naming the flag).
    """
    types = _field_types(config_cls)
    overrides: dict = {}
    position = 0
    while position < len(args):
        flag = args[position]
        if not flag.startswith(prefix):
            raise ScalerlError(f"{flag}: unknown option; agent fields are set as {prefix}FIELD VALUE")
        name = flag[len(prefix) :].replace("-", "_")
        if name not in types:
            known = ", ".join(f"{prefix}{n.replace('_', '-')}" for n in types)
            raise ScalerlError(f"{flag}: not a field of {config_cls.__name__}; known: {known}")
        values = []
        position += 1
        while position < len(args) and not args[position].startswith("--"):
            values.append(args[position])
            position += 1
        kind = types[name]
        origin = typing.get_origin(kind)
        if origin is tuple:
            inner = [a for a in typing.get_args(kind) if a is not Ellipsis][0]
            if not values:
                raise ScalerlError(f"{flag}: expected one or more {inner.__name__} values")
            overrides[name] = tuple(_parse_scalar(inner, v, flag) for v in values)
        else:
            if kind is bool and not values:
                overrides[name] = True
                continue
            if len(values) != 1:
                raise ScalerlError(f"{flag}: expected exactly one value, got {len(values)}")
            if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
                inner = [a for a in typing.get_args(kind) if a is not type(None)][0]
                overrides[name] = None if values[0].lower() == "none" else _parse_scalar(inner, values[0], flag)
            else:
                overrides[name] = _parse_scalar(kind, values[0], flag)
    return overrides


def build_config(config_cls: type, overrides: dict, prefix: str = "--agent."):
    """Instantiate ``config_cls`` with overrides; a validation error becomes a one-line ScalerlError.

    A :class:`ScalerlError` raised by the config itself (a range check, :mod:`scalerl.ranges`) already names its flag
    and is passed on unchanged. Another ``ValueError`` that starts with a field's name (``q_agg: expected 'min' or
    'mean', got 'max'``) is reworded to name the field's flag (``--agent.q-agg: expected ...``); any other becomes
    ``--agent: invalid CONFIG: MESSAGE``.
    """
    try:
        return config_cls(**overrides)
    except ScalerlError:
        raise
    except (ValueError, TypeError) as error:
        name, separator, rest = str(error).partition(": ")
        if separator and name in {field.name for field in dataclasses.fields(config_cls)}:
            raise ScalerlError(f"{prefix}{name.replace('_', '-')}: {rest}") from None
        raise ScalerlError(f"{prefix.rstrip('.')}: invalid {config_cls.__name__}: {error}") from None


def describe(config_cls: type, prefix: str = "--agent.") -> str:
    """One line per field: flag, type, default and its docstring (used in ``--help``)."""
    docs = field_help(config_cls)
    types = _field_types(config_cls)
    lines = []
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = getattr(types[f.name], "__name__", str(types[f.name]))
        lines.append(f"{prefix}{f.name.replace('_', '-')} ({kind}, default {default}): {docs.get(f.name, '')}")
    return "\n".join(lines)
