"""Config files: the tree as nested YAML, and the flat files of runs made before the tree existed.

`config_from_dict(TrainConfig, read_yaml(path), str(path))` reads either form: a flat file's keys are
`qaconv train`'s flag names (`lr`, `eval_batch`, ...), which `flag_names` maps to their place in the tree.
Values are coerced to their field's type and checked by `validate`, so errors name the file and the key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from qaconv.config.flags import FORMER_NAMES, TRAIN_FLAGS, flag_names
from qaconv.config.tree import TrainConfig, apply, leaves, validate
from qaconv.errors import QAConvError


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def flatten(cls: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """{dotted path: value} from a nested mapping (or a flat one of `qaconv train`'s flag names)."""
    if not isinstance(values, dict):
        raise QAConvError(f"{source}: expected a mapping of option names to values, got {type(values).__name__}")
    paths = {path for path, _, _ in leaves(cls)}
    # compat(0.2) flat-config: config.yaml files written before the tree held `qaconv train`'s flag names
    flat_names = {name: path for path, name in flag_names(cls, TRAIN_FLAGS if cls is TrainConfig else None).items()}
    former = {f"{path.rsplit('.', 1)[0]}.{name}": path for path, names in FORMER_NAMES.items() for name in names}
    former = {name: path for name, path in former.items() if path in paths}
    flat_names.update({**former, **{name.rsplit(".", 1)[-1]: path for name, path in former.items()}})
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in values.items():
        key = str(key)
        if isinstance(value, dict) and any(p.startswith(key + ".") for p in paths):
            for sub, sub_value in value.items():
                path = former.get(f"{key}.{sub}", f"{key}.{sub}")
                if path in paths:
                    out[path] = sub_value
                else:
                    unknown.append(path)
        elif key in paths:
            out[key] = value
        elif key in flat_names:
            out[flat_names[key]] = value
        else:
            unknown.append(key)
    if unknown:
        valid = ", ".join(sorted(paths))
        raise QAConvError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: {valid}")
    return out


def config_from_dict(cls: type, values: dict[str, Any], source: str = "config", name: Any = None) -> Any:
    """Build and validate a config of type `cls` from a nested (or old flat) mapping."""
    config = cls()
    apply(config, flatten(cls, values, source))
    return validate(config, name or (lambda path: f"{source}: {path}"))


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, with one-line errors for a missing file, a folder or bad YAML."""
    path = Path(path)
    if not path.is_file():
        raise QAConvError(f"config file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise QAConvError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
