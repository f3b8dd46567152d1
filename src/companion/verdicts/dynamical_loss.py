"""Verdict rules of the dynamical-loss paper (Ruiz-Garcia, Zhang, Schoenholz, Liu, ICML 2021;
arXiv 2102.03793).

One function per claim, named after it (``DL-C10`` -> :func:`dl_c10`). Each takes the
measurements a notebook made (numbers, counts, per-seed lists) and returns a
:class:`~companion.verdicts.Verdict`; its docstring states the rule in words and names the
notebook that measures it. No paper number is known for any claim (the full text could not be
read), so every threshold here is ours or our pilot's, and every rule says so in its expected text.

Three kinds of rule live here:

* **exact arithmetic** (``notebooks/dynamical_loss/01``): identities of the class-weight
  schedule checked in float64 to 1e-12, far from any threshold, so they keep margin 0;
* **chaotic full-batch GD on the spiral** (``02`` and ``03``): a last-bit change of the CPU moves
  individual trajectories (the lasting-gain share of DL-C10 flipped across CPUs), so each
  threshold gets a dead zone sized from a measured spread: the seed-to-seed standard error where
  there are several seeds, the binomial standard error of a share of periods, or the spread
  between the ordinary and a perturbed-CPU run measured for the notebook (passed in as a number
  and stated in the note). Inside it a part is ``undecided``;
* **pre-registered comparisons of trained networks** (``04``): mean differences over seeds with
  their standard errors, the dead zone being the 2-SE interval of the pre-registered rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import NOT_CHECKED, Verdict, all_of

# -- DL-D1 (01_schedule) -------------------------------------------------------------------------


def dl_d1(checks: Mapping[str, bool | None]) -> Verdict:
    """DL-D1, ``notebooks/dynamical_loss/01_schedule``: the schedule has every property of the
    official code's ``c_fn`` and loop.

    Each part is a boolean the notebook measured on the table of every step (float64 identities
    to 1e-12: sum Gamma = C, Gamma > 0, Gamma = 1 at period ends, the peak's closed form, T + 1
    steps per period with the classes in turn, the plain last period, the bounds and the gradient
    identity). Round-off sits ten orders of magnitude below the tolerances, so no dead zone
    (margin 0). Reproduced if every part holds; a failed part fails the claim; no parts: not
    checked.
    """
    expected = "every property of the official schedule holds (float64 identities to 1e-12)"
    if not checks:
        return Verdict(NOT_CHECKED, expected, "no property measured.")
    return all_of(dict(checks), expected,
                  "Form from the official code (c_fn and its loop); the paper's own equation was not read.")
