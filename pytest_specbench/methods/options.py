"""Typed method options: each method declares its own table of :class:`OptionSpec` when it registers.

Values arrive as text (``--specbench-method-opt best_of_n.n=4``) or typed (a YAML profile file); both
are read here, once, into the type the method uses, and a bad value is a :class:`ConfigError` that
names ``METHOD.KEY`` and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: How option values are read; ``choice`` takes one of ``choices``, ``subset`` a non-empty comma list of
#: them (a tuple in ``choices`` order), ``text`` any string.
KINDS = ("int", "float", "choice", "subset", "text")


@dataclass(frozen=True)
class OptionSpec:
    """One method option: its default, how to read it from text, and what values are allowed."""

    default: Any
    kind: str
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    #: None (written "auto", "none" or empty) is allowed and means "let the method decide".
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def parse(self, method: str, key: str, value: Any) -> Any:
        where = f"{method}.{key}"
        if value is None or (
            self.optional and isinstance(value, str) and value.strip().lower() in ("", "auto", "none")
        ):
            if self.optional:
                return None
            raise ConfigError(f"{where} needs a value")
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ConfigError(f"{where} must be a whole number, got {value!r}")
            try:
                number: Any = int(value)
            except ValueError:
                raise ConfigError(f"{where} must be a whole number, got {value!r}") from None
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number, got {value!r}") from None
            if not math.isfinite(number):
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
        elif self.kind == "subset":
            return self._subset(where, value)
        elif self.kind == "choice":
            number = str(value).strip()
            if number not in self.choices:
                raise ConfigError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
            return number
        else:
            return str(value)
        if self.minimum is not None and number < self.minimum:
            raise ConfigError(f"{where} must be at least {self.minimum:g}, got {value!r}")
        if self.maximum is not None and number > self.maximum:
            raise ConfigError(f"{where} must be at most {self.maximum:g}, got {value!r}")
        return number

    def _subset(self, where: str, value: Any) -> tuple[str, ...]:
        items = (
            [str(v).strip() for v in value]
            if isinstance(value, (list, tuple))
            else [v.strip() for v in str(value).replace("+", ",").split(",")]
        )
        items = [v for v in items if v]
        unknown = [v for v in items if v not in self.choices]
        if unknown or not items:
            raise ConfigError(
                f"{where} takes one or more of {', '.join(self.choices)} (comma-separated), got {value!r}"
            )
        return tuple(c for c in self.choices if c in items)


OptionTable = Mapping[str, OptionSpec]


def resolve_options(method: str, table: OptionTable, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``method`` with defaults filled in, each value read by its spec.

    An unknown key is an error that lists the valid ones. Already-resolved values pass unchanged, so a
    method may resolve the options it is handed without caring whether the run did it first.
    """
    unknown = sorted(set(given) - set(table))
    if unknown:
        valid = ", ".join(sorted(table)) or "none"
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(f'{method}.{k}' for k in unknown)}; valid options of {method}: {valid}"
        )
    resolved = {key: spec.default for key, spec in table.items()}
    for key, value in given.items():
        resolved[key] = table[key].parse(method, key, value)
    return resolved


def parse_method_option(item: str) -> tuple[str, str, str]:
    """``"best_of_n.n=4"`` -> ``("best_of_n", "n", "4")``; a malformed item is a :class:`ConfigError`."""
    match = re.fullmatch(r"\s*([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\s*=(.*)", item)
    if not match:
        raise ConfigError(f"method options are written NAME.KEY=VALUE (e.g. best_of_n.n=4), got {item!r}")
    return match.group(1), match.group(2), match.group(3).strip()
