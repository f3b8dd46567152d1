"""Verdict rules: how a claim's measurements become a verdict, as small tested functions.

A notebook measures; a rule judges. Each claim's rule is a pure function in the module of
its paper (``companion.verdicts.unhinged``, ``.nc_losses``, ``.dynamical_loss``,
``.rooted_loss``, ``.zoo``, ``.benchmarks``) that takes the measurements and returns a
:class:`Verdict`: the verdict, the expected value or relation in words, and a note. Its
docstring is the rule in words and names its notebook. The combinators below are the
shared vocabulary of those rules:

* :func:`decide` turns a boolean outcome (or None) into a verdict;
* :func:`at_least` / :func:`at_most` compare a measurement with a threshold **with a dead
  zone**: a measurement within ``margin`` of the threshold is ``undecided``, so noise (seed to
  seed, or the last bits of another CPU) cannot flip the verdict;
* :func:`non_inferior` and :func:`share_at_least` size that dead zone from a standard error;
* :func:`all_of` joins parts of a claim, :func:`majority` counts wins, ties and losses;
* :func:`unless_at_scale` keeps a toy stand-in from deciding a claim about scale.

The verdicts, best to worst evidence::

    reproduced          every part of the claim holds at this scale
    partially           some parts hold and some fail
    partially checked   every part that was checked holds; other parts were not checked here
    not reproduced      the claim (or a necessary part) fails
    undecided           measured, but within the noise margin: the evidence does not decide
    not checked at this scale   the run cannot test the claim (a stand-in, too few seeds, ...)

``passed`` is derived from the verdict (True only for reproduced, False for partially and
not reproduced, None otherwise), so the two never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

REPRODUCED = "reproduced"
PARTIALLY = "partially"
PARTIALLY_CHECKED = "partially checked"
NOT_REPRODUCED = "not reproduced"
UNDECIDED = "undecided"
NOT_CHECKED = "not checked at this scale"

VERDICTS = (REPRODUCED, PARTIALLY, PARTIALLY_CHECKED, NOT_REPRODUCED, UNDECIDED, NOT_CHECKED)
#: verdicts that judged the claim (the others say why it was not judged)
DECIDED = (REPRODUCED, PARTIALLY, NOT_REPRODUCED)


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict with the expected value or relation and a note (the numbers behind it)."""

    verdict: str
    expected: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool | None:
        """True if reproduced, False if partially or not reproduced, None if not judged."""
        return passed_of(self.verdict)

    def noted(self, *notes: str) -> Verdict:
        """The same verdict with ``notes`` appended to its note."""
        text = " ".join(n for n in (self.note, *notes) if n)
        return replace(self, note=text)

    def expecting(self, expected: str) -> Verdict:
        return replace(self, expected=expected)


def passed_of(verdict: str) -> bool | None:
    """The ``passed`` flag a ledger stores for ``verdict``."""
    if verdict == REPRODUCED:
        return True
    if verdict in (PARTIALLY, NOT_REPRODUCED):
        return False
    return None


def is_missing(value: float | None) -> bool:
    """None or NaN: nothing was measured (or the run diverged)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def largest(values: Iterable[float | None]) -> float:
    """The largest value; NaN when there is none or one is missing (a diverged run fails a
    check on its worst case rather than dropping out of it)."""
    values = list(values)
    if not values or any(is_missing(v) for v in values):
        return math.nan
    return max(float(v) for v in values)


def smallest(values: Iterable[float | None]) -> float:
    """The smallest value; NaN when there is none or one is missing (as :func:`largest`)."""
    values = list(values)
    if not values or any(is_missing(v) for v in values):
        return math.nan
    return min(float(v) for v in values)


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a note: ``digits`` significant digits; None and NaN spelled out."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def decide(outcome: bool | None, expected: str, note: str = "", *,
           unchecked: str = NOT_CHECKED) -> Verdict:
    """True -> reproduced, False -> not reproduced, None -> ``unchecked`` (not checked)."""
    if outcome is None:
        return Verdict(unchecked, expected, note)
    return Verdict(REPRODUCED if outcome else NOT_REPRODUCED, expected, note)


def _compare(value: float | None, threshold: float, margin: float, sign: int, expected: str,
             what: str, on_missing: str) -> Verdict:
    if margin < 0 or is_missing(margin):
        raise ValueError(f"margin must be a number >= 0, got {margin!r}")
    if is_missing(value):
        return Verdict(on_missing, expected, f"{what}: nothing measured (none or nan).")
    distance = sign * (value - threshold)
    band = f"{what} = {fmt(value)}, threshold {fmt(threshold)}, margin {fmt(margin)}"
    if distance > margin or (margin == 0 and distance >= 0):
        return Verdict(REPRODUCED, expected, f"{band}.")
    if distance < -margin:
        return Verdict(NOT_REPRODUCED, expected, f"{band}.")
    return Verdict(UNDECIDED, expected, f"undecided: {band} (inside the dead zone).")


def at_least(value: float | None, threshold: float, margin: float = 0.0, *, expected: str | None = None,
             what: str = "measured", on_missing: str = NOT_REPRODUCED) -> Verdict:
    """Reproduced if ``value > threshold + margin`` (``>=`` when margin is 0), not reproduced
    if ``value < threshold - margin``, undecided in between. A missing value (None, NaN: a
    diverged run) gives ``on_missing``."""
    return _compare(value, threshold, margin, +1, expected or f"{what} >= {fmt(threshold)}", what,
                    on_missing)


def at_most(value: float | None, threshold: float, margin: float = 0.0, *, expected: str | None = None,
            what: str = "measured", on_missing: str = NOT_REPRODUCED) -> Verdict:
    """The mirror image of :func:`at_least`: reproduced if ``value < threshold - margin``."""
    return _compare(value, threshold, margin, -1, expected or f"{what} <= {fmt(threshold)}", what,
                    on_missing)


def share_at_least(successes: int, total: int, threshold: float, *, expected: str | None = None,
                   what: str = "share", z: float = 2.0) -> Verdict:
    """A share of successes against a threshold with a binomial dead zone: the margin is ``z``
    standard errors of a share at the threshold, ``z * sqrt(t (1 - t) / total)``. No trials:
    not checked."""
    expected = expected or f"{what} >= {fmt(threshold)} beyond {z:g} binomial SE"
    if total <= 0:
        return Verdict(NOT_CHECKED, expected, f"{what}: no trials.")
    margin = z * math.sqrt(threshold * (1 - threshold) / total)
    verdict = at_least(successes / total, threshold, margin, expected=expected, what=what)
    return verdict.noted(f"({successes} of {total}.)")


def non_inferior(difference: float | None, standard_error: float | None, margin: float, *,
                 expected: str | None = None, what: str = "difference", z: float = 2.0) -> Verdict:
    """Non-inferiority of a paired difference (ours minus reference, higher is better).

    Reproduced if the lower bound ``difference - z*SE`` is above ``-margin``; not reproduced
    if the upper bound ``difference + z*SE`` is below ``-margin``; otherwise undecided: the
    test cannot show it at this sample size (said in the note, with the numbers)."""
    expected = expected or f"{what} - {z:g} SE > -{fmt(margin)}"
    if is_missing(difference) or is_missing(standard_error):
        return Verdict(NOT_REPRODUCED, expected, f"{what}: nothing measured (none or nan).")
    low, high = difference - z * standard_error, difference + z * standard_error
    band = (f"{what} = {fmt(difference)}, SE {fmt(standard_error)}: {z:g}-SE interval "
            f"[{fmt(low)}, {fmt(high)}] against margin -{fmt(margin)}")
    if low > -margin:
        return Verdict(REPRODUCED, expected, band + ".")
    if high < -margin:
        return Verdict(NOT_REPRODUCED, expected, band + ".")
    power = "" if z * standard_error < margin else f" The test cannot pass at this size: {z:g} SE > margin."
    return Verdict(UNDECIDED, expected, f"undecided: {band}.{power}")


def combine(verdicts: Iterable[str]) -> str:
    """One verdict for the parts of a claim (each a verdict string).

    Every part reproduced -> reproduced. A part that failed beside one that held ->
    partially. Failed parts with none that held -> not reproduced. Parts that held beside
    parts not judged (not checked, undecided, or themselves only partially checked) ->
    partially checked. Nothing judged: undecided if any part was undecided, else not checked.
    """
    parts = list(verdicts)
    if not parts:
        return NOT_CHECKED
    held = any(v in (REPRODUCED, PARTIALLY, PARTIALLY_CHECKED) for v in parts)
    failed = any(v in (NOT_REPRODUCED, PARTIALLY) for v in parts)
    unjudged = any(v in (UNDECIDED, NOT_CHECKED, PARTIALLY_CHECKED) for v in parts)
    if held and failed:
        return PARTIALLY
    if failed:
        return NOT_REPRODUCED
    if held:
        return PARTIALLY_CHECKED if unjudged else REPRODUCED
    return UNDECIDED if UNDECIDED in parts else NOT_CHECKED


def all_of(parts: Mapping[str, Verdict | bool | None], expected: str, note: str = "") -> Verdict:
    """The verdict of a claim made of named parts (a Verdict, or a bool / None per part).

    Combined by :func:`combine`; the note lists each part's verdict (and its own note)."""
    as_verdicts = {name: p if isinstance(p, Verdict) else decide(p, "") for name, p in parts.items()}
    combined = combine(v.verdict for v in as_verdicts.values())
    listing = "; ".join(f"{name}: {v.verdict}" + (f" ({v.note})" if v.note else "")
                        for name, v in as_verdicts.items())
    return Verdict(combined, expected, " ".join(x for x in (note, listing + "." if listing else "") if x))


def majority(wins: int, losses: int, ties: int = 0, *, expected: str | None = None,
             what: str = "comparisons") -> Verdict:
    """Wins against losses over decided comparisons (ties are neither): a strict majority of
    wins -> reproduced, a strict majority of losses -> not reproduced, otherwise partially;
    none decided -> undecided (all ties) or not checked (none run)."""
    expected = expected or f"wins in a strict majority of {what} (ties are neither)"
    total = wins + losses + ties
    note = f"{wins} wins, {losses} losses, {ties} ties over {total} {what}."
    if total == 0:
        return Verdict(NOT_CHECKED, expected, f"no {what} run.")
    if wins + losses == 0:
        return Verdict(UNDECIDED, expected, note)
    if 2 * wins > total:
        return Verdict(REPRODUCED, expected, note)
    if 2 * losses > total:
        return Verdict(NOT_REPRODUCED, expected, note)
    return Verdict(PARTIALLY, expected, note)


def unless_at_scale(verdict: Verdict, at_scale: bool, why: str) -> Verdict:
    """``verdict`` where the run is at the claim's scale; otherwise not checked at this scale,
    with what the stand-in measured (and would have concluded) in the note."""
    if at_scale:
        return verdict
    measured = f"The stand-in alone would say '{verdict.verdict}'" + (f": {verdict.note}" if verdict.note else ".")
    return Verdict(NOT_CHECKED, verdict.expected, f"{why} {measured}".strip())


def spread_margin(values: Iterable[float], z: float = 2.0, floor: float = 0.0) -> float:
    """A dead-zone half-width from measured repeats: ``z`` standard errors of their mean
    (sample standard deviation / sqrt(n)), at least ``floor``. One value or none: ``floor``."""
    data = [float(v) for v in values if not is_missing(v)]
    if len(data) < 2:
        return floor
    mean = sum(data) / len(data)
    sd = math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1))
    return max(floor, z * sd / math.sqrt(len(data)))
