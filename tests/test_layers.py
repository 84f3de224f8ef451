"""The rooms import one way (docs/architecture.md): core (shared plumbing) at the bottom, then
data and the engine; objectives, generation and scoring above them; train, synth, eval and
reward; then the loop (iterate), the demo and the CLI on top. No room imports one above it,
no module imports another room's private names, no import circle exists between modules
(counting imports inside functions), and no library module raises SystemExit (the CLI turns
errors into exit codes)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "prefalign"

TOP = ("prefalign.loop", "prefalign.demo", "prefalign.compat", "prefalign.cli")
ROOMS = ("prefalign.data", "prefalign.engine", "prefalign.objectives", "prefalign.generation",
         "prefalign.scoring", "prefalign.train", "prefalign.synth", "prefalign.eval",
         "prefalign.reward", *TOP)
FORBIDDEN = {
    "core": ROOMS,
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
    "loop": ("prefalign.demo", "prefalign.cli"),
    "demo": ("prefalign.cli",),
    "compat": ("prefalign.cli", "prefalign.demo", "prefalign.loop"),  # TRL's API on train
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


def _modules():
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _module_imports(path: Path, modules) -> set[str]:
    """The prefalign modules ``path`` imports anywhere (inside functions too): ``from P import
    m`` of a submodule counts as importing P.m, not P."""
    name = next(m for m, p in modules.items() if p == path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(base)
    out = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        # a module's own packages are imported with it: not an edge
        if target and target != name and not name.startswith(target + "."):
            out.add(target)
    return out


def test_no_import_circle():
    modules = _modules()
    graph = {m: _module_imports(p, modules) for m, p in modules.items()}
    seen, stack, circles = set(), [], []

    def visit(m):
        if m in stack:
            circles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not circles, [" -> ".join(c) for c in circles[:5]]


def test_no_private_import_from_another_room():
    """A name starting with an underscore stays in its room (rooms share public names)."""
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        package = ".".join(rel.parts[:-1])
        room = ".".join(rel.parts[:2])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            if ".".join(module.split(".")[:2]) == room:
                continue
            bad += [f"{path.relative_to(SRC)}: {module}.{a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad
