from pathlib import Path

import companion


def test_every_module_is_reachable_as_an_attribute():
    package = Path(companion.__file__).parent
    modules = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert modules == set(companion._SUBMODULES)
    for name in modules:
        assert getattr(companion, name).__name__ == f"companion.{name}"


def test_pipeline_modules_are_reachable_from_the_top_level():
    for name in companion._PIPELINE:
        assert getattr(companion, name).__name__ == f"companion.pipeline.{name}"
