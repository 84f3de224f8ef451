"""LLM-as-a-judge scorers; the judge is any `Generator` (a local model, vLLM, a server).

- ``PointwiseJudge``: shows the judge the question, the response and a rubric and asks for
  ``Rating: N`` with N from 1 to 10 (the last such line counts). An answer without a rating in
  range is *not* guessed: the response is left unscored (reason ``judge_unparsed``) and counted.
- ``PairwiseJudge``: compares every two responses to a prompt, in both orders (A/B then B/A) to
  cancel position bias, asking for ``Verdict: A``, ``Verdict: B`` or ``Verdict: tie``. A response's
  score is its mean points over the comparisons that parsed (win 1, tie 0.5, loss 0). Unparsed
  verdicts are counted and left out; a response with no parsed comparison is unscored.
Judging is greedy (temperature 0) unless another `SamplingConfig` is given.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Sequence

from prefalign.generation.types import PromptItem, SamplingConfig

from .base import Group, Scorer, Score, per_group
from .registry import scorer_kind

DEFAULT_RUBRIC = ("Rate how well the response answers the question: correctness first, then "
                  "helpfulness, clarity and concision.")

POINTWISE_TEMPLATE = """You are a strict and fair judge. {rubric}

[Question]
{question}

[Response]
{response}

Explain briefly, then end with a line of the form "Rating: N" where N is an integer from 1 to 10."""

PAIRWISE_TEMPLATE = """You are a strict and fair judge. {rubric}

[Question]
{question}

[Response A]
{a}

[Response B]
{b}

Compare the two responses. Explain briefly, then end with a line "Verdict: A" if A is better,
"Verdict: B" if B is better, or "Verdict: tie" if they are equally good."""

_RATING = re.compile(r"Rating:\s*\[*\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_VERDICT = re.compile(r"Verdict:\s*\[*\s*(A|B|tie)\b", re.IGNORECASE)


def parse_rating(text: str, low: float = 1, high: float = 10) -> float | None:
    found = _RATING.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if low <= value <= high else None


def parse_verdict(text: str) -> str | None:
    found = _VERDICT.findall(text)
    return found[-1].lower() if found else None


def read_principles(path: str) -> list[str]:
    """A constitution: one principle per non-blank line (``#`` lines are comments)."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise ValueError(f"principles {path}: cannot read it ({e.strerror or e})") from None
    principles = [line.strip() for line in text.splitlines()
                  if line.strip() and not line.strip().startswith("#")]
    if not principles:
        raise ValueError(f"principles {path}: no principle in it (one per line)")
    return principles


def with_principles(rubric: str, principles: Sequence[str]) -> str:
    """The rubric with a constitution after it (SALMON / SDSD style)."""
    listed = "\n".join(f"{i}. {p}" for i, p in enumerate(principles, 1))
    return f"{rubric}\n\nJudge by these principles:\n{listed}"


class _Judge(Scorer):
    def __init__(self, generator, *, rubric: str = DEFAULT_RUBRIC,
                 sampling: SamplingConfig | None = None, seed: int = 0,
                 principles: Sequence[str] = (), principles_file: str | None = None):
        super().__init__()
        self.generator = generator
        self.principles = list(principles)
        self.principles_file = principles_file
        self.base_rubric = rubric
        self.rubric = with_principles(rubric, self.principles) if self.principles else rubric
        self.sampling = sampling or SamplingConfig(temperature=0.0, max_new_tokens=512)
        self.seed = seed

    def _ask(self, texts: list[str]) -> list[str]:
        items = [PromptItem(index=i, prompt=[{"role": "user", "content": t}])
                 for i, t in enumerate(texts)]
        return [c[0].text for c in self.generator.generate(items, 1, self.sampling, self.seed)]

    def describe(self) -> dict:
        out = {"scorer": self.name, "judge": self.generator.describe(), "rubric": self.rubric}
        if self.principles:
            out.update(principles=self.principles, principles_file=self.principles_file)
        return out


class PointwiseJudge(_Judge):
    """With ``per_principle``, the judge rates each response once per principle (the rubric and
    that principle alone); the score is the mean rating, the ratings are its votes (each pair
    then gets the share of principles preferring its chosen response: its ``strength``)."""

    name = "judge"

    def __init__(self, generator, *, per_principle: bool = False, **kwargs):
        super().__init__(generator, **kwargs)
        if per_principle and not self.principles:
            raise ValueError("scorer judge: per_principle needs principles=FILE")
        self.per_principle = bool(per_principle)

    def _ratings(self, groups, rubric: str) -> list[Score]:
        prompts = [POINTWISE_TEMPLATE.format(rubric=rubric, question=item.text(), response=r)
                   for item, responses in groups for r in responses]
        flat = []
        for answer in self._ask(prompts):
            rating = parse_rating(answer)
            self.stats["parsed" if rating is not None else "unparsed"] += 1
            flat.append(Score(rating, None if rating is not None else
                              f"judge_unparsed: no 'Rating: N' (1-10) in {answer[-80:]!r}"))
        return flat

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        if not self.per_principle:
            return per_group(self._ratings(groups, self.rubric), groups)
        per = [self._ratings(groups, with_principles(self.base_rubric, [p]))
               for p in self.principles]
        flat = []
        for verdicts in zip(*per):
            if any(v.value is None for v in verdicts):
                reasons = "; ".join(f"principle {i}: {v.reason}"
                                    for i, v in enumerate(verdicts, 1) if v.reason)
                flat.append(Score(None, reasons))
            else:
                values = tuple(v.value for v in verdicts)
                flat.append(Score(sum(values) / len(values), None, values))
        return per_group(flat, groups)


class PairwiseJudge(_Judge):
    name = "pairjudge"

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        questions, where = [], []
        for g, (item, responses) in enumerate(groups):
            for i, j in combinations(range(len(responses)), 2):
                for first, second in ((i, j), (j, i)):
                    questions.append(PAIRWISE_TEMPLATE.format(
                        rubric=self.rubric, question=item.text(), a=responses[first],
                        b=responses[second]))
                    where.append((g, first, second))
        answers = self._ask(questions) if questions else []
        points = [[[] for _ in responses] for _, responses in groups]
        for (g, a, b), answer in zip(where, answers):
            verdict = parse_verdict(answer)
            if verdict is None:
                self.stats["unparsed"] += 1
                continue
            self.stats["ties" if verdict == "tie" else "decided"] += 1
            pa = {"a": 1.0, "b": 0.0, "tie": 0.5}[verdict]
            points[g][a].append(pa)
            points[g][b].append(1.0 - pa)
        return [[Score(sum(p) / len(p)) if p else
                 Score(None, "judge_unparsed: no comparison of this response parsed")
                 for p in row] for row in points]


_JUDGE_OPTIONS = {"rubric": "the judge's instructions (a built-in rubric)",
                  "principles": "a file of principles, one per line, added to the rubric "
                                "(none)"}


def _judge_options(options: dict) -> dict:
    from prefalign.core.settings import coerce

    options = dict(options)
    if "per_principle" in options:
        try:
            options["per_principle"] = coerce(str(options["per_principle"]), bool)
        except TypeError:
            raise ValueError(f"scorer judge: per_principle must be true or false, got "
                             f"{options['per_principle']!r}") from None
    path = options.pop("principles", None)
    if path:
        options.update(principles=read_principles(str(path)), principles_file=str(path))
    return options


@scorer_kind("judge", args="generator spec",
             options={**_JUDGE_OPTIONS, "per_principle": "1: rate once per principle; the "
                      "ratings are the votes (0)"},
             summary="pointwise LLM judge with a rubric; parses the last `Rating: N` (1-10). No "
                     "rating -> unscored (`judge_unparsed`), counted, never guessed")
def _build_pointwise(args: str, options: dict, device: str | None) -> Scorer:
    from prefalign.generation import make_generator

    options = _judge_options(options)  # the principles read before any model loads
    return PointwiseJudge(make_generator(args), **options)


@scorer_kind("pairjudge", args="generator spec", options=_JUDGE_OPTIONS,
             summary="every two responses compared in both orders (A/B, B/A) to cancel position "
                     "bias; `Verdict: A/B/tie`; score = mean points (win 1, tie 0.5); unparsed "
                     "verdicts counted and left out")
def _build_pairwise(args: str, options: dict, device: str | None) -> Scorer:
    from prefalign.generation import make_generator

    options = _judge_options(options)  # the principles read before any model loads
    return PairwiseJudge(make_generator(args), **options)
