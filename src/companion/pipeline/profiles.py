"""Profiles: one notebook, three scales.

Every notebook writes out a table of settings per profile (``ci``: seconds on 2 CPU cores
with offline data; ``gpu``: minutes on one H100 with the real datasets; ``paper``: the
paper's own settings) and resolves it once against the papermill parameters::

    cfg = resolve(profile, PROFILES, epochs=epochs, lr=lr)   # None = the profile's value
    cfg.epochs
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

KNOWN_PROFILES = ("ci", "gpu", "paper")


class Config(Mapping[str, Any]):
    """An immutable mapping of knob -> value, readable as attributes (``cfg.lr``)."""

    def __init__(self, profile: str, values: Mapping[str, Any], overridden: tuple[str, ...] = ()):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "overridden", tuple(overridden))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(_unknown_message(key, self._values, "knob")) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("a resolved profile is read-only; pass overrides to resolve()")

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, **self._values}

    def describe(self) -> str:
        width = max((len(k) for k in self._values), default=0)
        lines = [f"profile: {self.profile}"]
        for key, value in self._values.items():
            mark = "  (set by parameter)" if key in self.overridden else ""
            lines.append(f"  {key:<{width}} = {value!r}{mark}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def _unknown_message(name: str, valid: Mapping[str, Any] | tuple[str, ...], what: str) -> str:
    names = sorted(valid)
    hint = difflib.get_close_matches(name, names, n=1)
    maybe = f" Did you mean {hint[0]!r}?" if hint else ""
    return f"unknown {what} {name!r}.{maybe} Valid {what}s: {', '.join(names)}"


def resolve(
    profile: str, table: Mapping[str, Mapping[str, Any]], *, quiet: bool = False, **overrides: Any
) -> Config:
    """The profile's defaults from ``table`` with every non-None override applied.

    Raises ``ValueError`` for a profile the table does not define, for a knob no profile
    defines, and for a table whose profiles do not share one set of knobs.
    """
    if profile not in table:
        raise ValueError(_unknown_message(profile, tuple(table), "profile"))
    knobs = list(table[profile])
    for name, settings in table.items():
        if set(settings) != set(knobs):
            missing = sorted(set(knobs) ^ set(settings))
            raise ValueError(f"profile table is inconsistent: {name!r} differs in knobs {missing}")
    values = dict(table[profile])
    overridden = []
    for key, value in overrides.items():
        if key not in values:
            raise ValueError(_unknown_message(key, values, "knob"))
        if value is not None:
            values[key] = value
            overridden.append(key)
    cfg = Config(profile, values, tuple(overridden))
    if not quiet:
        print(cfg.describe())
    return cfg
