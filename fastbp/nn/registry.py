"""Parameters of the named choices (optimisers, schedules), declared once.

Each module that owns a registry of names also owns a table of the parameters
they take: `{param: Param(default, ok, want)}`. `take` fills in defaults,
checks ranges and refuses a parameter the choice does not take, so a typo in a
script (`step_epoch=5`) fails instead of being ignored. The config reads the
same tables for its keys, defaults and checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Param:
    default: Any
    ok: Callable[[Any], bool]
    want: str  # what a valid value is, for messages: "in [0, 1)"


def take(kind, name, table, takes, given):
    """The parameters of choice `name` (a `kind` such as 'optimizer'): `given`
    checked against `table`, defaults filled in for those not given."""
    unknown = [k for k in given if k not in takes]
    if unknown:
        which = f"it takes {', '.join(takes)}" if takes else "it takes none"
        raise ValueError(f"{kind} {name!r} takes no parameter {unknown[0]!r} ({which})")
    out = {}
    for key in takes:
        value = given.get(key, table[key].default)
        if not table[key].ok(value):
            raise ValueError(f"{kind} {name!r}: {key} must be {table[key].want}, got {value!r}")
        out[key] = value
    return out
