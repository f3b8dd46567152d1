"""The pipeline: everything that runs, records and reports notebooks, apart from the science.

``profiles`` (per-profile settings, type-checked overrides), ``start`` (the one setup call of
a notebook), ``ledger`` (claims of a run, with provenance), ``claims`` (the registry),
``report`` (REPORT.md), ``notebooks`` (papermill runs, normalization), ``plan`` (device
commands), ``scaffold`` (a new notebook's skeleton), ``paths`` and ``cli``.
"""
