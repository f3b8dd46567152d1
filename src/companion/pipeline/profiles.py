"""Profiles: one notebook, three scales, each knob written once.

A notebook writes out its table of settings: ``ci`` in full (seconds on 2 CPU cores with
offline data), and ``gpu`` (minutes on one H100 with the real datasets) and ``paper`` (the
paper's own settings) as the **differences** from ci::

    PROFILES = {
        "ci": dict(epochs=2, lr=0.1, widths=[20, 50]),
        "gpu": dict(epochs=50),
        "paper": dict(epochs=200, lr=0.05),
    }

``resolve(profile, PROFILES, overrides)`` merges the profile over ci and applies every
non-None override after :func:`check_overrides` has compared it with the type of the ci
value (int, float, bool, str, list of ..., None): a wrong type or a count below 1 is refused
with the knob's name, before anything runs. ``companion run`` does the same check before a
kernel starts, reading the table from the notebook's source (:func:`table_from_notebook`).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

KNOWN_PROFILES = ("ci", "gpu", "paper")
BASE = "ci"
#: knobs that count something: an override must be a positive integer
COUNT_SUFFIXES = ("epochs", "steps", "seeds", "points", "every", "batch_size", "width", "n")


class Config(Mapping[str, Any]):
    """An immutable mapping of knob -> value, readable as attributes (``cfg.lr``)."""

    def __init__(self, profile: str, values: Mapping[str, Any], overridden: tuple[str, ...] = (),
                 seed: int = 0):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "overridden", tuple(overridden))
        object.__setattr__(self, "seed", seed)

    @property
    def stored_run(self) -> bool:
        """True for the run whose outputs ``notebooks/`` stores: the ci profile, seed 0, no knob
        set by parameter. Regression asserts written for that run (``if cfg.stored_run:
        assert ...``) must not trip a shortened or re-seeded run (``-p epochs 5``), nor a gpu
        or paper run, where the rules record a failure instead."""
        return self.profile == BASE and not self.overridden and self.seed == 0

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


def check_table(table: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` unless ``table`` has a full ``ci`` row and every other row names
    only knobs of ci (the differences)."""
    if BASE not in table:
        raise ValueError(f"profile table needs a {BASE!r} row with every knob; it has {sorted(table)}")
    for name, row in table.items():
        extra = sorted(set(row) - set(table[BASE]))
        if extra:
            raise ValueError(f"profile table: {name!r} sets {extra}, which {BASE!r} does not define "
                             f"(ci lists every knob; other profiles only what differs)")


def profile_values(profile: str, table: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The settings of ``profile``: its row merged over the ci row."""
    check_table(table)
    check_profile(profile, tuple(table))
    return {**table[BASE], **table[profile]}


def check_profile(profile: str, known: tuple[str, ...] = KNOWN_PROFILES) -> None:
    if profile not in known:
        raise ValueError(_unknown_message(profile, known, "profile"))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        inner = sorted({_type_name(v) for v in value})
        return f"list of {' or '.join(inner)}" if inner else "list"
    return type(value).__name__


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of the ci value ``default`` (an int is a float too)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        kinds = [d for d in default if d is not None]
        return not kinds or all(any(_fits(v, d) for d in kinds) for v in value)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _is_count(name: str, default: Any) -> bool:
    return (isinstance(default, int) and not isinstance(default, bool)
            and any(name == s or name.endswith(f"_{s}") or name.startswith(f"{s}_") for s in COUNT_SUFFIXES))


def check_overrides(table: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming every override that is not a knob of the table, has not the
    type of its ci value, or is a count (epochs, steps, ...) below 1. None means "the profile's
    value" and always passes."""
    check_table(table)
    base = table[BASE]
    problems = []
    for name, value in overrides.items():
        if name not in base:
            problems.append(_unknown_message(name, base, "knob"))
            continue
        if value is None:
            continue
        default = base[name]
        if not _fits(value, default):
            problems.append(f"knob {name!r} expects {_type_name(default)} (ci value {default!r}), "
                            f"got {_type_name(value)} {value!r}")
        elif _is_count(name, default) and value < 1:
            problems.append(f"knob {name!r} counts something and must be >= 1, got {value!r}")
    if problems:
        raise ValueError("; ".join(problems))


def resolve(profile: str, table: Mapping[str, Mapping[str, Any]],
            overrides: Mapping[str, Any] | None = None, *, quiet: bool = False, seed: int = 0,
            **keyword_overrides: Any) -> Config:
    """The profile's settings (its row over ci) with every non-None override applied.

    Raises ``ValueError`` for an unknown profile, a malformed table, and an override that is
    not a knob, has the wrong type or is a count below 1.
    """
    overrides = {**(overrides or {}), **keyword_overrides}
    values = profile_values(profile, table)
    check_overrides(table, overrides)
    overridden = []
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            overridden.append(key)
    cfg = Config(profile, values, tuple(overridden), seed)
    if not quiet:
        print(cfg.describe())
    return cfg


def smoke_overrides(table: Mapping[str, Mapping[str, Any]], profile: str,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Overrides that run ``profile``'s code path at about ci's size: every number or list the
    profile changes goes back to its ci value (also where the profile says None, "the whole
    set", for a size that ci gives as a number), while strings and booleans (a dataset, an
    architecture, a switch: what selects the code path) keep the profile's value; ``extra``
    (``smoke:`` in registry/notebooks.yaml) shrinks what this rule cannot. Always names at least
    one knob, so the run counts as custom (results/custom/) and may run without CUDA."""
    check_table(table)
    base, row = table[BASE], table.get(profile, {})
    shrink = {k: base[k] for k, v in row.items()
              if v != base[k] and isinstance(base[k], (int, float, list, tuple)) and not isinstance(base[k], bool)
              and not isinstance(v, (str, bool))}
    shrink.update(extra or {})
    if not shrink:
        first = next(iter(base))
        shrink[first] = profile_values(profile, table)[first]
    return shrink


# -- reading a notebook's table without running it -------------------------------------------

_SAFE_CALLS = {"dict": dict, "list": list, "range": range, "tuple": tuple, "float": float,
               "int": int, "sorted": sorted, "round": round}


def table_from_source(source: str) -> dict[str, dict[str, Any]] | None:
    """The ``PROFILES = {...}`` assignment of a cell's source, evaluated with only literals and
    a few builtins (dict, list, range, ...); None if the source has no such assignment."""
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "PROFILES"):
            code = compile(ast.Expression(node.value), "<PROFILES>", "eval")
            return eval(code, {"__builtins__": _SAFE_CALLS}, {})  # noqa: S307 - our own notebooks
    return None


def table_from_notebook(path: str | Path) -> dict[str, dict[str, Any]] | None:
    """The profile table written in notebook ``path`` (None if it has none)."""
    import nbformat

    nb = nbformat.read(Path(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "PROFILES" in cell.source:
            try:
                table = table_from_source(cell.source)
            except SyntaxError:
                continue
            if table is not None:
                return table
    return None
