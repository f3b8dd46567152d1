"""What nbval compares must read the same on every machine (README, "Verifying").

The cells marked ``# NBVAL_CHECK_OUTPUT`` print verdicts, counts, booleans and numbers rounded
to at most three significant digits; exact values live in the ledger JSON. This scan keeps a
checked cell from printing a number that the last bits of another CPU could change.
"""

import re

import nbformat
import pytest

from companion.pipeline import notebooks

STORED = notebooks.discover()
MAX_SIGNIFICANT = 3
# a decimal number or one in scientific notation (integers are counts and pass)
FLOAT = re.compile(r"(?<![\w.])[-+]?(\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d+)(?![\w.])")


def significant_digits(token: str) -> int:
    mantissa = re.split(r"[eE]", token.lstrip("+-"))[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." not in token or re.search(r"[eE]", token) else len(mantissa)


def checked_text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            for output in cell.get("outputs", []):
                texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


@pytest.mark.parametrize("token, digits", [("0.123", 3), ("0.1230", 4), ("1.5e-10", 2), ("12.5", 3),
                                           ("100.0", 4), ("0.5", 1), ("3e+08", 1)])
def test_significant_digits(token, digits):
    assert significant_digits(token) == digits


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_checked_outputs_print_no_more_than_three_significant_digits(path):
    text = checked_text(path)
    assert text.strip(), "a stored notebook must have a checked summary"
    long = [m.group(0) for m in FLOAT.finditer(text) if significant_digits(m.group(0)) > MAX_SIGNIFICANT]
    assert not long, f"checked output prints {long}: round it (or move it out of the checked cell)"
