"""``selftests``: code scored by tests a model wrote itself (DSTC, Liu et al. 2024: "Direct
Preference Learning with Only Self-Generated Tests and Code").

Per prompt the writer (a generator spec: a model folder, ``hf:PATH``, ``vllm:PATH``,
``openai:URL#MODEL``, or ``hf:@policy``: the policy itself, each iterate round its own) samples
``tests`` candidate tests from ``template`` (with ``{question}``). Every response's code (its
first fenced block, else the text) then runs against every test (its first fenced block, else
the text) through the ``tests:`` scorer's isolated runs, which gives the pass matrix
M[i][j] = 1 when response i passes test j. A response's score is its share of tests passed, its
row of M its votes (pairs then carry ``chosen_votes``/``rejected_votes``), and the tests go into
the prompt's log entry (``notes.self_tests``), so the log keeps the whole matrix and the
``dstc`` pair strategy (`prefalign.synth.dstc`) can select by it. Tests are sampled with
per-sample seeds (``seed``), so a rerun writes the same ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from prefalign.generation.types import PromptItem, SamplingConfig

from .base import Group, Score, Scorer
from .registry import scorer_kind
from .verifier import UnitTestVerifier, extract_code

TEMPLATE = ("Write a test for a Python solution of the problem below: assert statements that "
            "call the solution's function, in one code block. Do not write the solution.\n\n"
            "[Problem]\n{question}")
NOTE = "self_tests"


class SelfTests(Scorer):
    name = "selftests"

    def __init__(self, writer, *, tests: int = 4, template: str = TEMPLATE,
                 temperature: float = 1.0, max_new_tokens: int = 256, seed: int = 0,
                 **run_options):
        super().__init__()
        if not isinstance(tests, int) or isinstance(tests, bool) or tests < 1:
            raise ValueError(f"scorer selftests: tests={tests!r}; must be an integer >= 1")
        if "{question}" not in template:
            raise ValueError("scorer selftests: template needs {question}")
        self.writer, self.n_tests, self.template, self.seed = writer, tests, template, seed
        self.sampling = SamplingConfig(temperature=float(temperature),
                                       max_new_tokens=int(max_new_tokens))
        self.runner = UnitTestVerifier(**run_options)  # its limits and isolation

    def write_tests(self, items: Sequence[PromptItem]) -> list[list[str]]:
        """``tests`` candidate tests per prompt, from the writer."""
        asks = [PromptItem(index=item.index, prompt=[{"role": "user", "content":
                                                       self.template.format(question=item.text())}])
                for item in items]
        return [[c.text for c in row]
                for row in self.writer.generate(asks, self.n_tests, self.sampling, self.seed)]

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        written = self.write_tests([item for item, _ in groups])
        jobs = [(extract_code(response), extract_code(test))
                for (_, responses), tests in zip(groups, written)
                for response in responses for test in tests]
        with ThreadPoolExecutor(self.runner.workers) as pool:
            runs = iter(list(pool.map(lambda job: self.runner.run(*job), jobs)))
        out = []
        for (_, responses), tests in zip(groups, written):
            notes = {NOTE: list(tests)}
            row = []
            for _ in responses:
                passed = tuple(1.0 if next(runs).value == 1.0 else 0.0 for _ in tests)
                row.append(Score(sum(passed) / len(passed), votes=passed, notes=notes))
            out.append(row)
        self.stats.update({f"runs_{k}": v for k, v in self.runner.stats.items()})
        self.stats["tests_written"] += sum(len(t) for t in written)
        self.runner.stats.clear()
        return out

    def describe(self) -> dict:
        runs = self.runner.describe()
        runs.pop("scorer"), runs.pop("field")
        return {"scorer": self.name, "writer": self.writer.describe(), "tests": self.n_tests,
                "template": self.template, "sampling": self.sampling.to_dict(),
                "seed": self.seed, "runs": runs}


@scorer_kind("selftests", args="generator spec (the test writer; `hf:@policy` in iterate)",
             notes=(NOTE,),
             summary="DSTC: the writer samples `tests` tests per prompt; every response's code "
                     "runs against every test, isolated as `tests:` runs are; score = share "
                     "passed, the pass row its votes, the tests kept in the log (for `--pairs "
                     "dstc`)",
             options={"tests": "tests written per prompt (4)",
                      "template": "the request, with {question} (built in)",
                      "temperature": "the writer's sampling temperature (1.0)",
                      "max_new_tokens": "longest test, in tokens (256)",
                      "seed": "the tests' sampling seed (0)",
                      "timeout": "seconds per run (10)", "memory_mb": "memory limit (1024)",
                      "workers": "runs at a time (2)", "max_processes": "process limit (32)",
                      "file_size_mb": "largest file a run may write (16)",
                      "temp_mb": "its temporary folder's size (64)",
                      "isolation": "`auto` or `full`, as for `tests:`"})
def _build(args: str, options: dict, device: str | None) -> Scorer:
    from prefalign.generation import make_generator

    if not args:
        raise ValueError("scorer selftests: name the test writer, e.g. selftests:hf:@policy")
    tests = options.get("tests", 4)
    if not isinstance(tests, int) or isinstance(tests, bool) or tests < 1:  # before any load
        raise ValueError(f"scorer selftests: tests={tests!r}; must be an integer >= 1")
    return SelfTests(make_generator(args), **options)
