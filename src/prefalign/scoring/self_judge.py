"""``selfjudge``: a model as its own preference classifier (Self-Rewarding LMs, Yuan et al. 2024;
"Implicit PO as a classifier"-style judging without generation).

For two responses to a prompt the model is asked which is better (``template``, with
``{question}``, ``{a}`` and ``{b}``, as the user's turn in its chat template) and its answer is
read from its log-probabilities, not sampled: p(A) = σ(log p("A") − log p("B")), each answer's
log-prob that of the whole assistant turn ``A`` (or ``B``) with its end token, through the
engine's packed forward. Both orders are asked to cancel position bias:
p(i ≻ j) = (p(A | i first) + p(B | j first)) / 2. A response's score is its mean p(i ≻ j) over
the prompt's other responses (1 for a prompt's only response), and each pair built from them gets
p(chosen ≻ rejected) as its ``strength``. With ``@policy``
(`prefalign.scoring.model_refs`) each iterate round judges with its own policy.
"""

from __future__ import annotations

import math
from itertools import permutations
from typing import Sequence

from prefalign.generation.types import PromptItem

from .base import Group, Score, Scorer
from .models import LogProbModel
from .registry import scorer_kind

TEMPLATE = ("Which response answers the question better?\n\n[Question]\n{question}\n\n"
            "[Response A]\n{a}\n\n[Response B]\n{b}\n\nAnswer with the letter A or B only.")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class SelfJudge(Scorer):
    name = "selfjudge"

    def __init__(self, model: str, *, template: str = TEMPLATE, device: str | None = None):
        super().__init__()
        for field in ("{question}", "{a}", "{b}"):
            if field not in template:
                raise ValueError(f"scorer selfjudge: template needs {field}")
        self.template = template
        self.lm = LogProbModel(model, device=device)

    def first_wins(self, item: PromptItem, a: str, b: str) -> float:
        """p(A): the model's probability that ``a`` (shown as A) is better than ``b``."""
        return self._first_wins([(item, a, b)])[0]

    def _first_wins(self, asks) -> list[float]:
        examples = []
        for item, a, b in asks:
            question = self.template.format(question=item.text(), a=a, b=b)
            judge = PromptItem(index=item.index, prompt=[{"role": "user", "content": question}])
            examples.append(self.lm.response_examples(judge, ["A", "B"]))
        values = self.lm.logps(examples)
        return [_sigmoid(la - lb) for la, lb in values]

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        asks, where = [], []
        for g, (item, responses) in enumerate(groups):
            for i, j in permutations(range(len(responses)), 2):
                asks.append((item, responses[i], responses[j]))
                where.append((g, i, j))
        p_first = self._first_wins(asks) if asks else []
        # p[g][i][j] = p(i ≻ j) = (p(A | i first) + p(B | j first)) / 2
        prob = [[[0.5] * len(responses) for _ in responses] for _, responses in groups]
        first = {(g, i, j): p for (g, i, j), p in zip(where, p_first)}
        for (g, i, j), p in first.items():
            prob[g][i][j] = (p + 1.0 - first[(g, j, i)]) / 2
        self.stats["comparisons"] += len(asks)
        out = []
        for row in prob:
            n = len(row)
            out.append([Score(sum(p for j, p in enumerate(r) if j != i) / (n - 1) if n > 1
                              else 1.0, beats=tuple(r)) for i, r in enumerate(row)])
        return out

    def describe(self) -> dict:
        return {"scorer": self.name, "model": self.lm.path, "template": self.template}


@scorer_kind("selfjudge", args="`PATH` or `@policy`",
             summary="the model as its own preference classifier: p(A) vs p(B) from its "
                     "log-probs when asked which response is better, both orders averaged; "
                     "score = mean win probability",
             options={"template": "the question, with {question}, {a}, {b} (built in)"})
def _build(args: str, options: dict, device: str | None) -> Scorer:
    return SelfJudge(args, device=device, **options)
