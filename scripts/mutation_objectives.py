#!/usr/bin/env python
"""Mutation testing of ``src/prefalign/objectives/``: does the objectives test suite notice when
the code is wrong?

Each mutant is one small change to one file (an AST rewrite, formatted back to source):

* ``op``: an arithmetic operator swapped (+ −, * /, ** *), a comparison swapped (< <=, > >=,
  < >, == !=, in / not in, is / is not), ``and`` / ``or`` swapped;
* ``neg``: a unary minus dropped, or a ``not`` dropped;
* ``const``: a number perturbed (0 → 1, 1 → 2, x → 2x for others), True ↔ False;
* ``side``: chosen and rejected swapped in a name or attribute (``chosen`` ↔ ``rejected``,
  ``_w`` ↔ ``_l``, ``rho_w`` ↔ ``rho_l``, …), or a rejected-side name replaced by the negated
  chosen-side one (ρ_l → −ρ_w: the bug class that symmetric test data cannot see), and back;
* ``args``: the first two positional arguments of a call swapped (not for commutative
  functions, nor for the registry entry that helpers take first only to name the objective
  in their errors);
* ``fn``: a function replaced by a close one (sigmoid ↔ logsigmoid, log ↔ log1p, exp ↔ expm1,
  minimum ↔ maximum, min ↔ max, mean ↔ sum, relu dropped, detach dropped).

Strings, docstrings, annotations and the messages of ``raise`` statements are not mutated, nor
negative axis literals (``dim=-1``, ``x.flip(-1)``: on the objectives' 2-D tensors -1 and 1 name
the same axis, so the "mutant" is the same program). The
package is copied to a temporary folder; the objectives tests (``tests/objectives``, stopping at
the first failure) run once per mutant in a forked child of a process that has already imported
torch and pytest, with a timeout (a mutant that hangs counts as killed). Nothing in the checkout
is modified, and edits made to it during the run are not seen (the package, the tests and the
files they read are copied first). The report lists every surviving mutant (file, line, what changed); with
``--json`` the full result is written for docs/objectives.md's mutation section.

    python scripts/mutation_objectives.py                 # every mutant
    python scripts/mutation_objectives.py --files pairwise.py --limit 50 --jobs 2
    python scripts/mutation_objectives.py --json bench/out/mutation.json
    python scripts/mutation_objectives.py --jobs 2 --log /tmp/mutants.jsonl   # resumable

Not part of the default test command (it takes a while: about a second per mutant per job).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "prefalign"
TARGET = PACKAGE / "objectives"
TESTS = ["tests/objectives"]
SNAPSHOT_FILES = ["tests/conftest.py", "pyproject.toml", "scripts/objectives_doc.py", "docs/objectives.md"]

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
              ast.FloorDiv: ast.Div, ast.Mod: ast.Mult}
SWAP_CMP = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
            ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn],
            ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}
SWAP_FN = {"sigmoid": "logsigmoid", "logsigmoid": "sigmoid", "log": "log1p", "log1p": "log", "exp": "expm1",
           "expm1": "exp", "minimum": "maximum", "maximum": "minimum", "min": "max", "max": "min",
           "mean": "sum", "sum": "mean", "softplus": "relu", "clamp_min": "clamp_max"}
DROP_FN = {"relu", "detach", "abs"}
SIDE_PAIRS = [("chosen", "rejected"), ("_w", "_l"), ("pc", "pr"), ("rc", "rr"), ("cl", "rl"), ("good", "bad"),
              ("desirable", "undesirable")]


@dataclass
class Mutant:
    file: str
    line: int
    kind: str
    description: str
    index: int  # which mutation of this file (in walk order)
    status: str = ""
    seconds: float = 0.0


def _skip_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes not to mutate: docstrings, strings, annotations, raise messages, decorators'
    text, and everything under them."""
    skip: set[int] = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    mark(a.annotation)
            if node.returns is not None:
                mark(node.returns)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc
            if isinstance(exc, ast.Call):
                for a in exc.args + [k.value for k in exc.keywords]:
                    mark(a)
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            mark(node)
        if isinstance(node, ast.Call):
            for a in _axis_arguments(node):
                mark(a)
    return skip


# Methods whose integer arguments name axes of the (batch x items or batch x tokens) tensors.
AXIS_METHODS = {"flip", "gather", "sum", "mean", "cumsum", "logcumsumexp", "logsumexp", "softmax",
                "log_softmax", "argsort", "sort", "squeeze", "cat", "stack", "amax", "amin", "topk"}


def _axis_arguments(node: ast.Call) -> list[ast.AST]:
    """Negative axis literals (``dim=-1``, ``x.flip(-1)``): the objectives index the last axis from
    the end, and on their 2-D tensors -1 and 1 are the same axis, so dropping the minus is the
    same program (an equivalent mutant, not a missed bug)."""
    def negative_literal(a):
        return isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub) and isinstance(a.operand, ast.Constant)

    found = [k.value for k in node.keywords if k.arg in ("dim", "axis") and negative_literal(k.value)]
    if _callee(node).rsplit(".", 1)[-1] in AXIS_METHODS:
        found += [a for a in node.args if negative_literal(a)]
    return found


def _swap_side(name: str) -> str | None:
    for a, b in SIDE_PAIRS:
        for x, y in ((a, b), (b, a)):
            if x.startswith("_"):
                if name.endswith(x):
                    return name[: -len(x)] + y
            elif name == x or x in name.split("_"):
                parts = name.split("_")
                return "_".join(y if p == x else p for p in parts)
    return None


def _negated_partner(name: str) -> str | None:
    """rho_l → rho_w etc. (for the "−ρ_w in place of ρ_l" bug class), and back."""
    for x, y in (("_l", "_w"), ("_w", "_l")):
        if name.endswith(x):
            return name[: -len(x)] + y
    return None


class Enumerate(ast.NodeVisitor):
    """Collect (node id, mutation) pairs in a fixed walk order."""

    def __init__(self, tree):
        self.skip = _skip_nodes(tree)
        self.found: list[tuple[ast.AST, str, str, object]] = []  # node, kind, description, payload

    def add(self, node, kind, desc, payload=None):
        if id(node) not in self.skip:
            self.found.append((node, kind, desc, payload))

    def generic_visit(self, node):
        if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
            new = SWAP_BINOP[type(node.op)]
            self.add(node, "op", f"{type(node.op).__name__} -> {new.__name__}", new)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_CMP:
            for new in SWAP_CMP[type(node.ops[0])]:
                self.add(node, "op", f"{type(node.ops[0]).__name__} -> {new.__name__}", new)
        elif isinstance(node, ast.BoolOp):
            self.add(node, "op", f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            self.add(node, "neg", f"drop {type(node.op).__name__}")
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            self.add(node, "const", f"{node.value!r} -> {_perturb(node.value)!r}")
        elif isinstance(node, ast.Name):
            other = _swap_side(node.id)
            if other:
                self.add(node, "side", f"{node.id} -> {other}", other)
            partner = _negated_partner(node.id)
            if partner and isinstance(node.ctx, ast.Load):
                self.add(node, "side", f"{node.id} -> -{partner}", ("neg", partner))
        elif isinstance(node, ast.Attribute):
            other = _swap_side(node.attr)
            if other:
                self.add(node, "side", f".{node.attr} -> .{other}", other)
        if isinstance(node, ast.Call):
            pos = [a for a in node.args if not isinstance(a, ast.Starred)]
            if len(pos) >= 2 and len(pos) == len(node.args) and _swappable(node):
                self.add(node, "args", f"swap the first two arguments of {_callee(node)}")
            callee = _callee(node).rsplit(".", 1)[-1]
            if callee in SWAP_FN:
                self.add(node, "fn", f"{callee} -> {SWAP_FN[callee]}", SWAP_FN[callee])
            if callee in DROP_FN and (node.args or isinstance(node.func, ast.Attribute)):
                self.add(node, "fn", f"drop {callee}")
        super().generic_visit(node)


COMMUTATIVE = {"max", "min", "maximum", "minimum", "promote_types"}


def _swappable(node: ast.Call) -> bool:
    """Not for commutative functions (the swap is the same call), nor where one of the two is the
    registry entry that helpers take first to name the objective in their errors (swapping it
    with a label only changes an error message, and never a value)."""
    if _callee(node).rsplit(".", 1)[-1] in COMMUTATIVE:
        return False
    return not any(isinstance(a, ast.Name) and a.id == "entry" for a in node.args[:2])


def _callee(node: ast.Call) -> str:
    try:
        return ast.unparse(node.func)
    except Exception:  # noqa: BLE001
        return "?"


def _perturb(value):
    if isinstance(value, bool):
        return not value
    if value == 0:
        return 1
    if value == 1:
        return 2
    return value * 2


def _apply(tree: ast.AST, target: ast.AST, kind: str, payload) -> ast.AST:
    """A copy of ``tree`` with the one mutation applied (found again by walk position)."""
    order = list(ast.walk(tree))
    pos = order.index(target)
    new_tree = copy.deepcopy(tree)
    node = list(ast.walk(new_tree))[pos]
    parent = {id(c): p for p in ast.walk(new_tree) for c in ast.iter_child_nodes(p)}

    def replace(old, new):
        p = parent[id(old)]
        for field, value in ast.iter_fields(p):
            if value is old:
                setattr(p, field, new)
                return
            if isinstance(value, list):
                for i, v in enumerate(value):
                    if v is old:
                        value[i] = new
                        return
        raise RuntimeError("node not found in its parent")

    if isinstance(node, ast.BinOp):
        node.op = payload()
    elif isinstance(node, ast.Compare):
        node.ops = [payload()]
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        replace(node, node.operand)
    elif isinstance(node, ast.Constant):
        node.value = _perturb(node.value)
    elif isinstance(node, ast.Name):
        if isinstance(payload, tuple):
            replace(node, ast.UnaryOp(op=ast.USub(), operand=ast.Name(id=payload[1], ctx=ast.Load())))
        else:
            node.id = payload
    elif isinstance(node, ast.Attribute):
        node.attr = payload
    elif isinstance(node, ast.Call):
        if kind == "args":
            node.args[0], node.args[1] = node.args[1], node.args[0]
        elif payload is not None:  # function swap
            if isinstance(node.func, ast.Attribute):
                node.func.attr = payload
            else:
                node.func.id = payload
        else:  # drop the call: keep its argument (or the object a method is called on)
            inner = node.func.value if isinstance(node.func, ast.Attribute) and not node.args else node.args[0]
            replace(node, inner)
    return ast.fix_missing_locations(new_tree)


def enumerate_mutants(files: list[Path]) -> list[tuple[Mutant, str]]:
    out = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        visitor = Enumerate(tree)
        visitor.visit(tree)
        seen = set()
        for i, (node, kind, desc, payload) in enumerate(visitor.found):
            try:
                mutated = ast.unparse(_apply(tree, node, kind, payload))
            except Exception:  # noqa: BLE001 - a rewrite that cannot be formatted is skipped
                continue
            if mutated in seen or mutated == ast.unparse(tree):
                continue
            seen.add(mutated)
            rel = str(path.relative_to(ROOT))
            out.append((Mutant(rel, getattr(node, "lineno", 0), kind, desc, i), mutated))
    return out


def _snapshot() -> Path:
    """A copy of what the tests read (the package, the objectives tests, the docs script and
    page they check), so the run neither touches the checkout nor sees edits made during it."""
    work = Path(tempfile.mkdtemp(prefix="prefalign-mutation-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PACKAGE, work / "src" / "prefalign", ignore=ignore)
    for rel in TESTS:
        shutil.copytree(ROOT / rel, work / rel, ignore=ignore)
    for rel in SNAPSHOT_FILES:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    return work


# the tests most likely to fail first run first (with -x a killed mutant stops at its first failure)
FIRST = ("test_values_asymmetric.py", "test_validation.py", "test_typed_batch.py", "test_fixes.py",
         "test_pairwise_values.py", "test_errors.py")


def _ordered(work: Path, tests: list[str]) -> list[str]:
    files = sorted(str(p.relative_to(work)) for rel in tests for p in (work / rel).rglob("test_*.py"))
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(files, key=lambda f: (rank.get(Path(f).name, len(rank)), f))


def _run_tests(work: Path, tests: list[str]) -> int:
    """In a forked child: import the (mutated) package from ``work`` and run its copy of the
    tests there."""
    os.chdir(work)
    sys.path.insert(0, str(work / "src"))
    sys.dont_write_bytecode = True
    import pytest

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    return pytest.main([*_ordered(work, tests), "-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
                        "-p", "no:randomly"])


def run_one(work: Path, mutant: Mutant, source: str, original: str, timeout: float, tests: list[str]) -> Mutant:
    target = work / mutant.file
    target.write_text(source, encoding="utf-8")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            code = _run_tests(work, tests)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(int(code))
    deadline = start + timeout
    status = None
    while status is None:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            exit_code = os.waitstatus_to_exitcode(code)
            status = "survived" if exit_code == 0 else ("killed" if exit_code in (1, 2, 3) else f"error {exit_code}")
            if exit_code == 5:
                status = "error (no tests ran)"
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = "timeout (killed)"
            break
        time.sleep(0.02)
    target.write_text(original, encoding="utf-8")
    mutant.status = status
    mutant.seconds = round(time.perf_counter() - start, 2)
    return mutant


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="*", help="file names under src/prefalign/objectives (default: all)")
    ap.add_argument("--limit", type=int, default=0, help="run only the first N mutants (0 = all)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at the same time (each in its own copy)")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per mutant (default: 5x the clean run)")
    ap.add_argument("--json", help="write the full result here")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--report", help="write the markdown report (kill rate, every surviving mutant "
                    "with its explanation from scripts/mutation_notes.tsv) here, e.g. "
                    "docs/objectives-mutation.md")
    ap.add_argument("--log", help="append each result to this JSON-lines file as it comes, and skip the "
                    "mutants it already holds (a run that was interrupted continues)")
    a = ap.parse_args()
    # the run works in copies (it changes directory): output paths are taken from here
    a.json, a.report, a.log = (str(Path(x).resolve()) if x else x for x in (a.json, a.report, a.log))

    files = sorted(TARGET.glob("*.py")) if not a.files else [TARGET / f for f in a.files]
    mutants = enumerate_mutants(files)
    if a.limit:
        mutants = mutants[: a.limit]
    done: list[Mutant] = []
    if a.log and Path(a.log).exists():
        done = [Mutant(**json.loads(line)) for line in Path(a.log).read_text().splitlines() if line.strip()]
        keys = {(m.file, m.index, m.description) for m in done}
        mutants = [(m, src) for m, src in mutants if (m.file, m.index, m.description) not in keys]
        print(f"{len(done)} mutants already in {a.log}", flush=True)
    if a.list:
        for m, _ in mutants:
            print(f"{m.file}:{m.line}  {m.kind:5}  {m.description}")
        print(f"{len(mutants)} mutants")
        return 0

    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch  # noqa: F401 - imported once here, inherited by every forked child

    torch.set_num_threads(1)
    import pytest  # noqa: F401

    works = []
    for _ in range(max(1, a.jobs)):
        works.append(_snapshot())
    os.chdir(works[0])
    originals = {m.file: (works[0] / m.file).read_text(encoding="utf-8") for m, _ in mutants}

    # the clean run: must pass, and sets the timeout
    clean = run_one(works[0], Mutant(str(files[0].relative_to(ROOT)), 0, "none", "no change", -1),
                    originals.get(str(files[0].relative_to(ROOT)), files[0].read_text(encoding="utf-8")),
                    originals.get(str(files[0].relative_to(ROOT)), files[0].read_text(encoding="utf-8")),
                    600, TESTS)
    if clean.status != "survived":
        print(f"the unmutated tests do not pass ({clean.status}); fix them first", file=sys.stderr)
        return 2
    timeout = a.timeout or max(20.0, 5 * clean.seconds)
    print(f"{len(mutants)} mutants; clean run {clean.seconds:.1f} s; timeout {timeout:.0f} s; {len(works)} jobs",
          flush=True)

    results: list[Mutant] = []
    started = time.perf_counter()
    log_file = open(a.log, "a", encoding="utf-8") if a.log else None

    def record(m: Mutant) -> None:
        results.append(m)
        if log_file:
            log_file.write(json.dumps(asdict(m)) + "\n")
            log_file.flush()

    queue = list(mutants)
    if len(works) == 1:
        for n, (m, src) in enumerate(queue, 1):
            record(run_one(works[0], m, src, originals[m.file], timeout, TESTS))
            if n % 25 == 0 or n == len(queue):
                _progress(results, len(queue), started)
    else:
        # one forked supervisor per job, each with its own copy; results come back as JSON lines
        chunks = [queue[i::len(works)] for i in range(len(works))]
        pipes = []
        for work, chunk in zip(works, chunks):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                with os.fdopen(w, "w") as out:
                    for m, src in chunk:
                        done = run_one(work, m, src, originals[m.file], timeout, TESTS)
                        out.write(json.dumps(asdict(done)) + "\n")
                        out.flush()
                os._exit(0)
            os.close(w)
            pipes.append((pid, os.fdopen(r)))
        import selectors

        sel = selectors.DefaultSelector()
        for pid, f in pipes:
            sel.register(f, selectors.EVENT_READ)
        open_pipes = len(pipes)
        while open_pipes:
            for key, _ in sel.select():
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                record(Mutant(**json.loads(line)))
                if len(results) % 25 == 0 or len(results) == len(queue):
                    _progress(results, len(queue), started)
        for pid, _ in pipes:
            os.waitpid(pid, 0)
    for work in works:
        shutil.rmtree(work, ignore_errors=True)
    if log_file:
        log_file.close()
    results = done + results

    results.sort(key=lambda m: (m.file, m.line, m.index))
    killed = [m for m in results if m.status.startswith(("killed", "timeout"))]
    survived = [m for m in results if m.status == "survived"]
    errors = [m for m in results if m.status.startswith("error")]
    rate = len(killed) / max(1, len(killed) + len(survived))
    print(f"\n{len(results)} mutants: {len(killed)} killed, {len(survived)} survived, {len(errors)} errors; "
          f"kill rate {100 * rate:.1f}% ({time.perf_counter() - started:.0f} s)")
    by_file: dict[str, list[int]] = {}
    for m in results:
        k = by_file.setdefault(m.file, [0, 0])
        k[0] += m in killed
        k[1] += 1
    for f, (k, n) in sorted(by_file.items()):
        print(f"  {f}: {k}/{n} killed")
    if survived:
        print("\nsurvived:")
        for m in survived:
            print(f"  {m.file}:{m.line}  {m.kind:5}  {m.description}")
    if errors:
        print("\nerrors (the mutated package did not import or collect; not counted):")
        for m in errors:
            print(f"  {m.file}:{m.line}  {m.kind:5}  {m.description}  [{m.status}]")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"kill_rate": rate, "killed": len(killed), "survived": len(survived),
                                            "errors": len(errors), "mutants": [asdict(m) for m in results]},
                                           indent=1), encoding="utf-8")
    if a.report:
        Path(a.report).write_text(render_report(results, killed, survived, errors, rate), encoding="utf-8")
        print(f"wrote {a.report}")
    return 0


NOTES = ROOT / "scripts" / "mutation_notes.tsv"


def _notes() -> list[tuple[str, str, str, str]]:
    """(file name, mutation, a piece of the source line, why it survives), tab-separated."""
    rows = []
    for line in NOTES.read_text(encoding="utf-8").splitlines() if NOTES.exists() else []:
        if line.strip() and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) == 4:
                rows.append(tuple(p.strip() for p in parts))
    return rows


def _explain(m: Mutant, notes, used: set) -> str:
    """The first note for this file, mutation and line not used yet (several mutants of one kind
    on one line have one note each, in order), else the first that matches."""
    source = _source_line(m)
    matches = [i for i, (name, description, piece, _) in enumerate(notes)
               if Path(m.file).name == name and m.description == description and piece in source]
    if not matches:
        return "not explained"
    pick = next((i for i in matches if i not in used), matches[0])
    used.add(pick)
    return notes[pick][3]


def _source_line(m: Mutant) -> str:
    lines = (ROOT / m.file).read_text(encoding="utf-8").splitlines()
    return lines[m.line - 1].strip() if 0 < m.line <= len(lines) else ""


def render_report(results, killed, survived, errors, rate) -> str:
    notes = _notes()
    out = ["# Mutation testing of the objectives", "",
           "<!-- Written by `python scripts/mutation_objectives.py --jobs 2 --report "
           "docs/objectives-mutation.md`; the explanations come from scripts/mutation_notes.tsv. -->", "",
           "Each mutant is one small wrong change to one file of `src/prefalign/objectives/` (an "
           "operator, a sign, a constant, chosen and rejected swapped, a function replaced, a `detach` "
           "dropped, two arguments swapped: see the script's docstring); the objectives tests run "
           "against each. A mutant the tests notice is killed. Not generated, as the same program: "
           "the minus of a negative axis dropped (`dim=-1` on 2-D tensors) and "
           "`torch.promote_types`'s arguments swapped. A survivor is a mutant the tests cannot "
           "tell from the code; each is listed below with why (most are equivalent programs: "
           "a default no caller uses, a dtype two tensors share, a detach under no_grad).", "",
           f"**{len(results)} mutants: {len(killed)} killed, {len(survived)} survived "
           f"({len(errors)} did not import and are not counted); kill rate {100 * rate:.1f}%.**", "",
           "| file | killed | mutants |", "|---|---|---|"]
    by_file: dict[str, list[int]] = {}
    for m in results:
        if m in errors:
            continue
        k = by_file.setdefault(m.file, [0, 0])
        k[0] += m in killed
        k[1] += 1
    for f, (k, n) in sorted(by_file.items()):
        out.append(f"| `{Path(f).name}` | {k} | {n} |")
    out += ["", "## Every surviving mutant, and why it survives", "",
            "| where | mutation | source line | why |", "|---|---|---|---|"]
    used: set = set()
    for m in survived:
        cell = lambda t: t.replace("|", "\\|")  # noqa: E731
        out.append(f"| `{Path(m.file).name}:{m.line}` | {cell(m.description)} | `{cell(_source_line(m))}` "
                   f"| {cell(_explain(m, notes, used))} |")
    return "\n".join(out) + "\n"


def _progress(results, total, started):
    killed = sum(m.status.startswith(("killed", "timeout")) for m in results)
    print(f"  {len(results)}/{total} run, {killed} killed, {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
