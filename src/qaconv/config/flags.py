"""Command-line flags generated from the config tree, so every command names an option the same way.

A command picks the options it exposes and may rename some (`qaconv train` calls the evaluation batch
size `--eval-batch`, `qaconv evaluate` calls it `--batch-size`). Flags default to "not given", so only the
flags on the command line override the config file; `given(args)` returns them as {dotted path: value}.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from qaconv.config.options import base_type, spec_of
from qaconv.config.tree import TrainConfig, apply, coerce_options, get_path, leaves, validate

#: How `qaconv train` names options whose field name alone is ambiguous or historical. The same names are
#: the keys of the flat config.yaml files written before the tree existed.
TRAIN_FLAGS = {
    "sampler.name": "sampler",
    "evaluation.batch_size": "eval_batch",
    "evaluation.dtype": "eval_dtype",
    "validation.share": "val_share",
    "validation.sets": "val_sets",
    "validation.every": "val_every",
}

#: The flag name of every option of `qaconv train` ({dotted path: name}), filled in at the end of this module.
TRAIN_NAMES: dict[str, str] = {}

#: How `qaconv synth` names the options whose field names are long.
SYNTH_FLAGS = {"num_ids": "ids", "num_cams": "cams"}

#: Earlier names of options: still accepted as flags and as config-file keys (flat or nested), so old
#: command lines and the config.yaml of old runs keep working.
FORMER_NAMES = {  # compat(0.2) former-names
    "sampler.gs_warmup": ("gs_warmup_epochs",),
}


def flag_names(cls: type, renames: dict[str, str | None] | None = None) -> dict[str, str]:
    """{dotted path: flag name without dashes, underscores kept} of every option `cls` exposes."""
    renames = renames or {}
    names = {}
    for path, _, _ in leaves(cls):
        name = renames.get(path, path.rsplit(".", 1)[-1])
        if name is not None:
            names[path] = name
    return names


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def namer(names: dict[str, str]) -> Callable[[str], str]:
    """How validation messages call an option: its flag (options without a flag: the config key)."""

    def name(path: str) -> str:
        return flag(names[path]) if path in names else path

    return name


def _dest(path: str) -> str:
    return "cfg__" + path.replace(".", "__")


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    names: dict[str, str],
    defaults: object | None = None,
    only: Iterable[str] | None = None,
) -> None:
    """Add one flag per option in `names` (restricted to `only` paths when given), typed by the tree."""
    defaults = defaults if defaults is not None else cls()
    wanted = set(only) if only is not None else None
    for path, field, kind in leaves(cls):
        if path not in names or (wanted is not None and path not in wanted):
            continue
        spec = spec_of(field)
        default = get_path(defaults, path)
        shown = ",".join(default) if isinstance(default, list) else "none" if default is None else default
        if spec.shown and field.default_factory is not dataclasses.MISSING and default == field.default_factory():
            shown = spec.shown
        listed = spec.choices and not all(choice in spec.help for choice in spec.choices)
        text = spec.help + (f" ({', '.join(spec.choices)})" if listed else "") + f" (default: {shown})"
        plain, _ = base_type(kind)
        common = {"dest": _dest(path), "default": argparse.SUPPRESS, "help": text}
        flags = [flag(names[path]), *(flag(former) for former in FORMER_NAMES.get(path, ()))]
        if plain is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif plain == list[str]:
            parser.add_argument(*flags, type=_comma_list, metavar="A,B", **common)
        else:
            convert = {int: int, float: float}.get(plain, str)
            parser.add_argument(*flags, type=convert, metavar=names[path].upper(), **common)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def given(args: argparse.Namespace) -> dict[str, object]:
    """The options given on the command line, as {dotted path: value}."""
    return {key[5:].replace("__", "."): value for key, value in vars(args).items() if key.startswith("cfg__")}


def options_from(cls: type, args: argparse.Namespace, names: dict[str, str]) -> Any:
    """A validated `cls` (a tree of options) from the flags given on the command line; options not given keep
    their defaults. Errors name the flag (`names`: {dotted path: flag name})."""
    values = coerce_options(cls, given(args), namer(names))
    if cls.__dataclass_params__.frozen:  # a value (SynthConfig): checked when it is made
        return cls(**values)
    return validate(apply(cls(), values), namer(names))


TRAIN_NAMES.update(flag_names(TrainConfig, TRAIN_FLAGS))
