"""Judged win rates: an LLM judge compares the policy's response with a baseline's, per prompt,
in both orders; the win rate with a bootstrap interval, its length-controlled version, and the
judge's health.

Each prompt is asked twice (`prefalign.scoring.judge`'s pairwise template: the policy's
response shown as A, then as B). A verdict gives the policy 1 (win), 1/2 (tie) or 0 (loss); the
prompt's score is the mean of its two verdicts, so a judge that only follows position gives 1/2.
A prompt with a verdict that did not parse is left out and counted (``unparsed``).

- ``win_rate``: the mean score; ``ci_low``/``ci_high``: the 2.5 and 97.5 percentiles of the
  mean over ``bootstrap`` resamples of the prompts (seeded).
- ``tie_rate``: the share of prompts scored 1/2 (two ties, or two verdicts that disagree);
  ``position_bias_rate``: the share of prompts whose two decided verdicts name the same
  position (A then A, or B then B), i.e. flip with the order.
- ``lc_win_rate`` (length-controlled, the AlpacaEval 2 idea): the scores regressed on the
  length gap by logistic regression, logit P(win) = θ₀ + θ₁·tanh(Δ/σ) with Δ = policy length −
  baseline length (tokens) and σ their standard deviation, fitted by maximum likelihood with the
  fractional scores as targets; the win rate at zero gap, σ(θ₀), beside the raw one, and
  ``length_coef`` = θ₁. AlpacaEval's per-instruction terms need many models' outputs and are
  left out.
- ``kappa`` (with two judges): Cohen's κ between their per-prompt outcomes (win, tie, loss).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

from prefalign.generation.types import PromptItem, SamplingConfig
from prefalign.scoring.judge import DEFAULT_RUBRIC, PAIRWISE_TEMPLATE, parse_verdict

_POINTS = {"a": 1.0, "tie": 0.5, "b": 0.0}


@dataclass
class Judged:
    scores: list[float | None]  # per prompt: the mean of its two verdicts (None: unparsed)
    first: list[str | None] = field(default_factory=list)  # verdicts, policy shown as A
    swapped: list[str | None] = field(default_factory=list)  # verdicts, policy shown as B


def judge_both_orders(generator, prompts: Sequence, policy: Sequence[str],
                      baseline: Sequence[str], *, rubric: str = DEFAULT_RUBRIC,
                      max_new_tokens: int = 512, seed: int = 0) -> Judged:
    """Each prompt's verdicts in both orders, greedy, from the judge ``generator``."""
    if not (len(prompts) == len(policy) == len(baseline)):
        raise ValueError(f"{len(prompts)} prompts, {len(policy)} policy and {len(baseline)} "
                         "baseline responses: give one of each per prompt")
    questions = []
    for p, mine, theirs in zip(prompts, policy, baseline):
        text = p.text() if isinstance(p, PromptItem) else str(p)
        questions.append(PAIRWISE_TEMPLATE.format(rubric=rubric, question=text, a=mine, b=theirs))
        questions.append(PAIRWISE_TEMPLATE.format(rubric=rubric, question=text, a=theirs, b=mine))
    items = [PromptItem(index=i, prompt=[{"role": "user", "content": q}])
             for i, q in enumerate(questions)]
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    answers = [row[0].text for row in generator.generate(items, 1, sampling, seed)]
    out = Judged([])
    for k in range(len(prompts)):
        a, b = parse_verdict(answers[2 * k]), parse_verdict(answers[2 * k + 1])
        out.first.append(a)
        out.swapped.append(b)
        out.scores.append(None if a is None or b is None
                          else (_POINTS[a] + 1.0 - _POINTS[b]) / 2)
    return out


def bootstrap_interval(values: Sequence[float], *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the mean over ``resamples`` resamples with replacement."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n
                   for _ in range(resamples))
    tail = (1 - level) / 2
    return means[int(tail * (resamples - 1))], means[int(math.ceil((1 - tail) * (resamples - 1)))]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def logistic_fit(x: Sequence[float], y: Sequence[float], *, steps: int = 100,
                 tol: float = 1e-12) -> tuple[float, float]:
    """(θ₀, θ₁) maximising Σ y log σ(θ₀ + θ₁x) + (1 − y) log σ(−θ₀ − θ₁x), y in [0, 1]
    (Newton's method). A feature that never varies fits θ₁ = 0."""
    if max(x) - min(x) < 1e-12:
        mean = min(max(sum(y) / len(y), 1e-9), 1 - 1e-9)
        return math.log(mean / (1 - mean)), 0.0
    t0 = t1 = 0.0
    for _ in range(steps):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for xi, yi in zip(x, y):
            p = _sigmoid(t0 + t1 * xi)
            w = p * (1 - p)
            g0, g1 = g0 + (yi - p), g1 + (yi - p) * xi
            h00, h01, h11 = h00 + w, h01 + w * xi, h11 + w * xi * xi
        det = h00 * h11 - h01 * h01
        if det <= 1e-300:  # separable data: the fit would run off; keep the last estimate
            break
        d0, d1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        t0, t1 = t0 + d0, t1 + d1
        if d0 * d0 + d1 * d1 < tol:
            break
    return t0, t1


def length_controlled(scores: Sequence[float], gaps: Sequence[float]) -> dict[str, float]:
    """The win rate at zero length gap (see the module docstring)."""
    n = len(gaps)
    mean = sum(gaps) / n
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / n)
    x = [math.tanh(g / sd) if sd > 0 else 0.0 for g in gaps]
    t0, t1 = logistic_fit(x, scores)
    return {"lc_win_rate": _sigmoid(t0), "length_coef": t1}


def outcome(score: float) -> int:
    return 1 if score > 0.5 else (-1 if score < 0.5 else 0)


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's κ of two raters' labels over the same items."""
    n = len(a)
    labels = sorted(set(a) | set(b))
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def summarise(judged: Judged, *, policy_lengths: Sequence[int], baseline_lengths: Sequence[int],
              resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """The judged metrics of one judge (see the module docstring)."""
    kept = [i for i, s in enumerate(judged.scores) if s is not None]
    out: dict[str, float] = {"prompts": len(judged.scores), "unparsed": len(judged.scores)
                             - len(kept)}
    if not kept:
        return out
    scores = [judged.scores[i] for i in kept]
    low, high = bootstrap_interval(scores, resamples=resamples, seed=seed)
    decided = [i for i in kept if judged.first[i] != "tie" and judged.swapped[i] != "tie"]
    same_position = sum(judged.first[i] == judged.swapped[i] for i in decided)
    out.update(win_rate=sum(scores) / len(scores), ci_low=low, ci_high=high,
               tie_rate=sum(s == 0.5 for s in scores) / len(scores),
               position_bias_rate=same_position / len(kept))
    out.update(length_controlled(scores, [policy_lengths[i] - baseline_lengths[i]
                                          for i in kept]))
    return out


def judged_metrics(judges: Sequence, prompts: Sequence, policy: Sequence[str],
                   baseline: Sequence[str], *, lengths, resamples: int = 1000,
                   seed: int = 0) -> tuple[dict[str, float], list[dict]]:
    """The metrics of each judge (a generator spec or object): ``judged/...``, a second judge's
    ``judged2/...`` and their ``judged/kappa``; and the per-prompt verdicts. ``lengths(text)``
    counts a response's tokens."""
    from prefalign.generation import make_generator

    policy_lengths = [lengths(t) for t in policy]
    baseline_lengths = [lengths(t) for t in baseline]
    metrics: dict[str, float] = {}
    verdicts = [{"prompt_index": i} for i in range(len(prompts))]
    runs = []
    for k, judge in enumerate(judges):
        generator = make_generator(judge) if isinstance(judge, str) else judge
        judged = judge_both_orders(generator, prompts, policy, baseline, seed=seed)
        prefix = "judged" if k == 0 else f"judged{k + 1}"
        metrics.update({f"{prefix}/{name}": v for name, v in summarise(
            judged, policy_lengths=policy_lengths, baseline_lengths=baseline_lengths,
            resamples=resamples, seed=seed).items()})
        for row, a, b, s in zip(verdicts, judged.first, judged.swapped, judged.scores):
            row[prefix] = {"policy_as_a": a, "policy_as_b": b, "score": s}
        runs.append(judged)
    if len(runs) >= 2:
        both = [i for i, (x, y) in enumerate(zip(runs[0].scores, runs[1].scores))
                if x is not None and y is not None]
        if both:
            metrics["judged/kappa"] = cohen_kappa([outcome(runs[0].scores[i]) for i in both],
                                                  [outcome(runs[1].scores[i]) for i in both])
    return metrics, verdicts
