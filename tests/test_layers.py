"""The rooms import one way (docs/architecture.md): generation and scoring are used by synth,
eval and iterate, and import none of them; eval imports nothing from synth."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "prefalign"

FORBIDDEN = {
    "generation": ("prefalign.synth", "prefalign.scoring", "prefalign.eval", "prefalign.cli",
                   "prefalign.train"),
    "scoring": ("prefalign.synth", "prefalign.eval", "prefalign.cli", "prefalign.train"),
    "eval": ("prefalign.synth", "prefalign.cli"),
}


def _imports(path: Path, package: str):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join(parts + ([node.module] if node.module else []))
            else:
                yield node.module


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_nothing_from_the_rooms_above_it(room):
    bad = []
    for path in sorted((SRC / room).rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        package = ".".join(rel.parts[:-1])
        for name in _imports(path, package):
            if name and name.startswith(FORBIDDEN[room]):
                bad.append(f"{path.relative_to(SRC)}: {name}")
    assert not bad, bad
