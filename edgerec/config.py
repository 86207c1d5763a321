"""Typed configuration: dataclasses to and from plain dicts, TOML presets and flag overrides.

Every config in edgerec is a frozen dataclass that validates itself in `__post_init__`. A run
saves its resolved config as JSON beside what it wrote; presets in `configs/` are TOML files
with the same keys. The precedence is: dataclass defaults < preset file < command-line flags.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from edgerec.errors import ConfigError

T = TypeVar("T")


def to_dict(config: Any) -> dict:
    """A JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[T], payload: dict, *, where: str = "config") -> T:
    """Build `cls` from a dict, recursing into nested dataclasses; unknown keys are errors."""
    if not isinstance(payload, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {type(payload).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(payload) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(fields)}"
        )
    kwargs = {}
    for name, value in payload.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, where) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_toml(path: Path) -> dict:
    """A preset file as a dict; `configs/NAME` may omit the `.toml`."""
    candidates = [path, path.with_suffix(".toml")] if path.suffix != ".toml" else [path]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return tomllib.loads(candidate.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{candidate}: not valid TOML ({exc})") from None
    raise ConfigError(
        f"config preset {path} not found: expected a TOML file such as configs/NAME.toml"
    )


def merge(base: dict, override: dict) -> dict:
    """Deep merge: tables merge key by key, other values are replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def save_json(config: Any, path: Path) -> None:
    path.write_text(json.dumps(to_dict(config), indent=2) + "\n")
