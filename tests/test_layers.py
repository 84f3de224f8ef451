"""The rooms import one way (docs/architecture.md): data and the engine at the bottom;
objectives, generation and scoring above them; train, synth, eval and reward; then the loop
(iterate, the demo) and the CLI on top. No room imports one above it, and no library module
raises SystemExit (the CLI turns errors into exit codes)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "prefalign"

TOP = ("prefalign.loop", "prefalign.cli")
FORBIDDEN = {
    "data": ("prefalign.engine", "prefalign.objectives", "prefalign.generation",
             "prefalign.scoring", "prefalign.train", "prefalign.synth", "prefalign.eval",
             "prefalign.reward", *TOP),
    "objectives": ("prefalign.data", "prefalign.generation", "prefalign.scoring",
                   "prefalign.train", "prefalign.synth", "prefalign.eval", "prefalign.reward",
                   *TOP),
    "generation": ("prefalign.synth", "prefalign.scoring", "prefalign.eval", "prefalign.train",
                   "prefalign.reward", *TOP),
    "scoring": ("prefalign.synth", "prefalign.eval", "prefalign.train", *TOP),
    "train": ("prefalign.synth", "prefalign.eval", "prefalign.generation", *TOP),
    "synth": ("prefalign.train", "prefalign.eval", *TOP),
    "eval": ("prefalign.synth", "prefalign.train", *TOP),
    "reward": ("prefalign.synth", "prefalign.eval", *TOP),  # shares train's run fingerprints
    "tasks": ("prefalign.synth", "prefalign.eval", "prefalign.train", *TOP),
    "loop": ("prefalign.cli",),
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


def test_no_library_module_raises_system_exit():
    """Errors are exceptions with a message; only the CLI (and the sandbox's child process
    entry point, run as its own program) turns them into exit codes."""
    allowed = {SRC / "scoring" / "sandbox.py"}
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        if path in allowed or SRC / "cli" in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "quit"):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad
