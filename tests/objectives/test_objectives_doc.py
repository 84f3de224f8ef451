"""docs/objectives.md is generated from the registry (scripts/objectives_doc.py) and current."""

import importlib.util
from pathlib import Path

from prefalign.objectives import available

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("objectives_doc", ROOT / "scripts" / "objectives_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_current():
    text = (ROOT / "docs" / "objectives.md").read_text(encoding="utf-8")
    assert text == _script().render(), "docs/objectives.md is stale: run python scripts/objectives_doc.py"


def test_the_page_holds_every_formula_paper_and_difference():
    text = _script().render()
    for o in available():
        assert f"### `{o.name}`" in text and o.formula in text and o.paper in text
        for row in o.differences:
            assert row[0] in text
        for m in o.modifiers:
            assert m.paper in text
