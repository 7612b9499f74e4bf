"""The allowed values of numeric config fields: declared once per config class, checked in one function.

A config class declares, beside its fields, which values each numeric field takes and which probability fields
sum to one::

    RANGES = {"lr": "> 0", "batch_size": ">= 1", "hidden_dims": ">= 1", "tau": "(0, 1]"}
    SUMS_TO_ONE = (("actor_p_curgoal", "actor_p_trajgoal", "actor_p_randomgoal"),)

and its ``__post_init__`` calls :func:`check_ranges` (agent configs through :class:`scalerl.agents.config.AgentConfig`).
The declarations are merged along the class's MRO, a subclass's entry replacing its base's (``subgoal_steps`` is
``>= 1`` for the hierarchical agents and ``>= 0`` for the sampler, where 0 means "no subgoals"). A value outside its
range raises a one-line :class:`~scalerl.errors.ScalerlError` naming the flag: ``--agent.batch-size: expected an
integer >= 1, got 0``.

A range is a string (or a :class:`Range` to word its error differently): ``">= a"``, ``"> a"``, ``"<= b"``, ``"< b"``,
an interval ``"(a, b]"`` (brackets closed, parentheses open), or ``"finite"``. Every value must also be a finite
number (an integer for an ``int`` field); for a tuple field the range applies to each entry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable

from scalerl.errors import ScalerlError

# Probabilities of one group may miss 1 by float rounding (0.1 + 0.2 + 0.7 != 1.0 exactly).
SUM_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric field takes.

    Attributes:
        spec: ``">= a"``, ``"> a"``, ``"<= b"``, ``"< b"``, ``"(a, b)"`` / ``"[a, b]"`` / ``"(a, b]"`` / ``"[a, b)"``,
            or ``"finite"`` (any finite number).
        words: how an error states the range (``"a positive integer"``); by default ``spec`` itself (``">= 1"``,
            ``"in (0, 1]"``).
    """

    spec: str
    words: str | None = None
    low: float | None = dataclasses.field(init=False, default=None, repr=False)
    high: float | None = dataclasses.field(init=False, default=None, repr=False)
    low_open: bool = dataclasses.field(init=False, default=False, repr=False)
    high_open: bool = dataclasses.field(init=False, default=False, repr=False)

    def __post_init__(self):
        spec = self.spec.strip()
        bounds: dict = {}
        if spec[:1] in "([" and spec[-1:] in ")]" and "," in spec:
            low, high = (float(part) for part in spec[1:-1].split(","))
            bounds = dict(low=low, high=high, low_open=spec[0] == "(", high_open=spec[-1] == ")")
        elif spec != "finite":
            operator, _, number = spec.partition(" ")
            if operator not in (">=", ">", "<=", "<"):
                raise ValueError(f"Range: cannot read '{self.spec}'; expected '>= a', '(a, b]', 'finite', ...")
            side = "low" if operator.startswith(">") else "high"
            bounds = {side: float(number), f"{side}_open": len(operator) == 1}
        for name, value in bounds.items():
            object.__setattr__(self, name, value)

    def contains(self, value, integer: bool = False) -> bool:
        """Whether ``value`` is a finite number (an integer if ``integer``) in the range."""
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, noun: str = "") -> str:
        """The range as an error states it after ``expected``: ``">= 1"``, ``"in (0, 1]"``, or with a ``noun``
        (``"an integer"``, ``"integers"``) ``"an integer >= 1"``, ``"integers >= 1"``."""
        if self.words is not None:
            return self.words
        spec = self.spec.strip()
        if spec == "finite":
            return {"": "a finite number", "an integer": "a finite integer"}.get(noun, f"finite {noun}")
        text = f"in {spec}" if self.low is not None and self.high is not None else spec
        return f"{noun} {text}" if noun else text


def agent_flag(name: str) -> str:
    """How ``scalerl train`` / ``scalerl online`` spell an agent field: ``batch_size`` -> ``--agent.batch-size``."""
    return "--agent." + name.replace("_", "-")


def option_flag(name: str) -> str:
    """How a command spells a field of its own config: ``log_interval`` -> ``--log-interval``."""
    return "--" + name.replace("_", "-")


def _numeric_kind(annotation) -> tuple[type, bool] | None:
    """``(int or float, is a tuple)`` for ``int``, ``float``, ``tuple[int, ...]``, ``tuple[float, ...]`` (optionally
    ``| None``); None for any other annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if annotation in (int, float):
        return annotation, False
    if typing.get_origin(annotation) is tuple:
        entries = {arg for arg in typing.get_args(annotation) if arg is not Ellipsis}
        if len(entries) == 1 and entries <= {int, float}:
            return entries.pop(), True
    return None


@functools.cache
def numeric_fields(config_cls: type) -> dict[str, tuple[type, bool]]:
    """Every numeric field of a config dataclass, in declaration order: ``{name: (int or float, is a tuple)}``."""
    hints = typing.get_type_hints(config_cls)
    kinds = {field.name: _numeric_kind(hints[field.name]) for field in dataclasses.fields(config_cls)}
    return {name: kind for name, kind in kinds.items() if kind is not None}


@functools.cache
def declared_ranges(config_cls: type) -> tuple[dict[str, Range], tuple[tuple[str, ...], ...]]:
    """The ``RANGES`` (as :class:`Range`, in field order) and ``SUMS_TO_ONE`` of ``config_cls`` and its bases.

    Raises:
        TypeError: a declared name is not a numeric field of ``config_cls`` (a typo would otherwise check nothing).
    """
    merged: dict = {}
    sums: list[tuple[str, ...]] = []
    for cls in reversed(config_cls.__mro__):
        merged.update(cls.__dict__.get("RANGES", {}))
        sums.extend(group for group in cls.__dict__.get("SUMS_TO_ONE", ()) if group not in sums)
    kinds = numeric_fields(config_cls)
    unknown = sorted(set(merged).union(*sums) - set(kinds))
    if unknown:
        raise TypeError(f"{config_cls.__name__}: ranges declared for {unknown}, which are not numeric fields")
    ranges = {name: Range(merged[name]) if isinstance(merged[name], str) else merged[name] for name in kinds}
    return {name: allowed for name, allowed in ranges.items() if name in merged}, tuple(sums)


def check_ranges(config, flag: Callable[[str], str] = agent_flag, nouns: bool = True) -> None:
    """Check every declared range of ``config`` (a config dataclass instance) and every probability group's sum.

    Args:
        config: the config, from its ``__post_init__``.
        flag: how the error names a field (:func:`agent_flag`, :func:`option_flag`, ...).
        nouns: say what a scalar is (``expected an integer >= 1``); False words it as ``expected >= 1`` unless the
            value is of another type (the wording ``scalerl online`` has always used).

    Raises:
        ScalerlError: one line, for the first field (in declaration order) out of its range, e.g.
            ``--agent.lr: expected a number > 0, got -1.0``, or a probability group that does not sum to 1.
    """
    ranges, sums = declared_ranges(type(config))
    kinds = numeric_fields(type(config))
    for name, allowed in ranges.items():
        value = getattr(config, name)
        kind, is_tuple = kinds[name]
        integer = kind is int
        if value is None:
            continue
        if is_tuple:
            if not isinstance(value, (tuple, list)) or not all(allowed.contains(entry, integer) for entry in value):
                noun = "integers" if integer else "numbers"
                raise ScalerlError(f"{flag(name)}: expected {allowed.describe(noun)}, got {value}")
        elif not allowed.contains(value, integer):
            wrong_type = isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real)
            noun = ("an integer" if integer else "a number") if nouns or wrong_type else ""
            shown = repr(value) if isinstance(value, str) else value
            raise ScalerlError(f"{flag(name)}: expected {allowed.describe(noun)}, got {shown}")
    for group in sums:
        values = [getattr(config, name) for name in group]
        if abs(math.fsum(values) - 1.0) > SUM_TOLERANCE:
            flags = ", ".join(flag(name) for name in group[:-1]) + f" and {flag(group[-1])}"
            got = ", ".join(f"{value:g}" for value in values[:-1]) + f" and {values[-1]:g}"
            raise ScalerlError(f"{flags}: expected probabilities summing to 1, got {got} (sum {math.fsum(values):g})")
