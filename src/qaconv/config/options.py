"""One option of the config tree: a dataclass field with its help text and the checks every value must pass.

`option(default, help, choices=..., low=..., high=..., above=...)` declares a field; `coerce` turns a value
read from YAML (or given in Python) into the field's type, and `check` tests its range. Both raise a
one-line QAConvError naming the option, so a YAML `lr: 1e-3` (a string to PyYAML) becomes 0.001 and
`freeze_bn: "no"` becomes False, while `lr: fast` is refused by name.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from qaconv.errors import QAConvError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null", "~", "")


@dataclass(frozen=True)
class Spec:
    """What a field's values may be: one of `choices`, or a number in [low, high] and > `above`; `shown` is
    how help texts state a default that depends on the machine (it is computed by a function). A text field
    with `or_int` holds one of its `choices` or a whole number in [low, high] (`--gs-warmup auto` or `3`); with
    `any_case` a choice may be written in any case (`--style b` is B)."""

    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    above: float | None = None
    shown: str | None = None
    or_int: bool = False
    any_case: bool = False


def option(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field with a Spec in its metadata; a list default, or a function that computes the
    default (such as the machine's CPU count), becomes a default_factory."""
    spec = Spec(help=help, **checks)
    if callable(default):
        return dataclasses.field(default_factory=default, metadata={"spec": spec})
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"spec": spec})
    return dataclasses.field(default=default, metadata={"spec": spec})


def spec_of(field: dataclasses.Field) -> Spec:
    return field.metadata.get("spec") or Spec(help=field.name.replace("_", " "))


def base_type(kind: Any) -> tuple[type, bool]:
    """(the plain type, whether None is allowed) of a field's type hint: `str | None` -> (str, True)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def coerce(value: Any, kind: Any, name: str, spec: Spec | None = None) -> Any:
    """`value` as the type `kind` (int, float, bool, str, list[str], optionally | None), or a QAConvError; `spec`
    (the field's): a text option that also takes whole numbers (given as an int in YAML), or whose choices may
    be written in any case."""
    spec = spec or Spec(help="")
    or_int = spec.or_int
    plain, nullable = base_type(kind)
    if value is None or (nullable and isinstance(value, str) and value.strip().lower() in _NONE):
        if nullable:
            return None
        raise QAConvError(f"{name}: a value is required (got nothing)")
    if plain is bool:
        return _to_bool(value, name)
    if plain is int:
        return _to_int(value, name)
    if plain is float:
        return _to_float(value, name)
    if plain == list[str]:
        return _to_str_list(value, name)
    if or_int and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise QAConvError(f"{name}: expected text, got {value!r}")
    if spec.any_case and spec.choices:
        return next((choice for choice in spec.choices if choice.lower() == value.lower()), value)
    return value


def _to_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise QAConvError(f"{name}: expected true or false (yes/no), got {value!r}")


def _to_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise QAConvError(f"{name}: expected an integer, got {value!r}")
    try:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, float) and number.is_integer():
            return int(number)
        if isinstance(number, numbers.Integral):  # int, and NumPy's integers
            return int(number)
    except (TypeError, ValueError):
        pass
    raise QAConvError(f"{name}: expected an integer, got {value!r}")


def _to_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise QAConvError(f"{name}: expected a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise QAConvError(f"{name}: expected a number, got {value!r}") from None


def _to_str_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise QAConvError(f"{name}: expected a list of names (or one comma-separated string), got {value!r}")


def check(value: Any, spec: Spec, name: str) -> None:
    """Raise a QAConvError naming the option when `value` breaks its Spec (None always passes)."""
    if value is None:
        return
    if spec.or_int and value not in (spec.choices or ()):
        if not value.strip().isdigit():
            raise QAConvError(
                f"{name} must be {' or '.join(spec.choices or ())} or a number of 0 or more, got {value!r}"
            )
        value = int(value)
    elif spec.choices is not None and value not in spec.choices:
        raise QAConvError(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise QAConvError(f"{name} must be a finite number, got {value}")
    if spec.above is not None and not value > spec.above:
        raise QAConvError(f"{name} must be greater than {_num(spec.above)}, got {_num(value)}")
    if spec.low is not None and value < spec.low:
        raise QAConvError(f"{name} must be at least {_num(spec.low)}, got {_num(value)}")
    if spec.high is not None and value > spec.high:
        raise QAConvError(f"{name} must be at most {_num(spec.high)}, got {_num(value)}")


def _num(value: float) -> str:
    return f"{value:g}"
