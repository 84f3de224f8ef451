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
  ``length_coef`` = θ₁. ``lc_features`` (`prefalign.eval.style_features`: words, lines,
  markdown, or the user's MODULE:FUNCTION) adds one such term per feature, tanh of its own
  standardised gap, and ``lc_coef/NAME``; the win rate is then the one at zero gap in all of
  them. Where the features separate wins from losses (few prompts, say) the likelihood has no
  maximum; the fit is then regularised (a ridge of 0.1 on the coefficients, ``lc_ridge``).
  AlpacaEval's per-instruction terms need many models' outputs and are left out.
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


def logistic_fit(columns: Sequence[Sequence[float]], y: Sequence[float], *, steps: int = 100,
                 tol: float = 1e-12, ridge: float = 0.0) -> list[float]:
    """[θ₀, θ₁, …] maximising Σ y log σ(θ₀ + Σⱼ θⱼxⱼ) + (1 − y) log σ(−θ₀ − Σⱼ θⱼxⱼ)
    − (ridge/2)·Σⱼ θⱼ² over the feature ``columns`` x₁, x₂, …, with y in [0, 1] (Newton's
    method, least-squares steps so that collinear features share their weight; the intercept is
    not penalised). A feature that never varies fits θⱼ = 0; on separable data without a ridge
    the fit stops after ``steps`` (the likelihood has no maximum there)."""
    import torch

    varies = [max(c) - min(c) >= 1e-12 for c in columns]
    x = torch.tensor([[1.0] + [c[i] for c, v in zip(columns, varies) if v]
                      for i in range(len(y))], dtype=torch.float64)
    target = torch.tensor(list(y), dtype=torch.float64)
    theta = torch.zeros(x.shape[1], dtype=torch.float64)
    if x.shape[1] == 1:  # no feature varies: the intercept is the mean's logit
        mean = min(max(float(target.mean()), 1e-9), 1 - 1e-9)
        theta[0] = math.log(mean / (1 - mean))
    else:
        for _ in range(steps):
            p = torch.sigmoid(x @ theta)
            penalty = torch.full_like(theta, ridge)
            penalty[0] = 0.0
            gradient = x.T @ (target - p) - penalty * theta
            hessian = x.T @ (x * (p * (1 - p))[:, None]) + torch.diag(penalty)
            step = torch.linalg.lstsq(hessian, gradient[:, None], driver="gelsd").solution[:, 0]
            if not torch.isfinite(step).all():
                break
            theta = theta + step
            if float(step @ step) < tol:
                break
    fitted = iter(theta[1:].tolist())
    return [float(theta[0])] + [next(fitted) if v else 0.0 for v in varies]


# A coefficient this large on a feature in [-1, 1] means the features separate wins from losses
# (the maximum likelihood runs off to infinity, and σ(θ₀) with it); the fit is then made again
# with a weak Gaussian prior on the coefficients (ridge 0.1: a coefficient of 1 costs 0.05 nats)
SEPARATED, SEPARATED_RIDGE = 20.0, 0.1


def _standardised(gaps: Sequence[float]) -> list[float]:
    """tanh(Δ/σ), σ the gaps' standard deviation (0 where they never vary)."""
    n = len(gaps)
    mean = sum(gaps) / n
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / n)
    return [math.tanh(g / sd) if sd > 0 else 0.0 for g in gaps]


def length_controlled(scores: Sequence[float], gaps: Sequence[float],
                      others: dict[str, Sequence[float]] | None = None) -> dict[str, float]:
    """The win rate at zero length gap (see the module docstring); with ``others`` (a feature's
    name -> the policy's minus the baseline's value per prompt), at zero gap in each of them
    too, and each one's coefficient as ``lc_coef/NAME``."""
    others = others or {}
    columns = [_standardised(gaps)] + [_standardised(g) for g in others.values()]
    theta, ridge = logistic_fit(columns, scores), 0.0
    if max(abs(t) for t in theta) > SEPARATED:  # the features separate wins from losses
        ridge = SEPARATED_RIDGE
        theta = logistic_fit(columns, scores, ridge=ridge)
    out = {"lc_win_rate": _sigmoid(theta[0]), "length_coef": theta[1], "lc_ridge": ridge}
    out.update({f"lc_coef/{name}": t for name, t in zip(others, theta[2:])})
    return out


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
              resamples: int = 1000, seed: int = 0,
              feature_gaps: dict[str, Sequence[float]] | None = None) -> dict[str, float]:
    """The judged metrics of one judge (see the module docstring); ``feature_gaps``: the other
    features the length-controlled win rate controls for, per prompt."""
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
    out.update(length_controlled(
        scores, [policy_lengths[i] - baseline_lengths[i] for i in kept],
        {name: [g[i] for i in kept] for name, g in (feature_gaps or {}).items()}))
    return out


def judged_metrics(judges: Sequence, prompts: Sequence, policy: Sequence[str],
                   baseline: Sequence[str], *, lengths, resamples: int = 1000,
                   seed: int = 0, lc_features: Sequence[str] = ()
                   ) -> tuple[dict[str, float], list[dict]]:
    """The metrics of each judge (a generator spec or object): ``judged/...``, a second judge's
    ``judged2/...`` and their ``judged/kappa``; and the per-prompt verdicts. ``lengths(text)``
    counts a response's tokens; ``lc_features`` names what else the length-controlled win rate
    controls for (`prefalign.eval.style_features`)."""
    from prefalign.eval import style_features
    from prefalign.generation import make_generator

    policy_lengths = [lengths(t) for t in policy]
    baseline_lengths = [lengths(t) for t in baseline]
    feature_gaps = {}
    for name in lc_features:
        fn = style_features.resolve(name)
        feature_gaps[name] = [a - b for a, b in zip(style_features.values(fn, name, policy),
                                                    style_features.values(fn, name, baseline))]
    metrics: dict[str, float] = {}
    verdicts = [{"prompt_index": i} for i in range(len(prompts))]
    runs = []
    for k, judge in enumerate(judges):
        generator = make_generator(judge) if isinstance(judge, str) else judge
        judged = judge_both_orders(generator, prompts, policy, baseline, seed=seed)
        prefix = "judged" if k == 0 else f"judged{k + 1}"
        metrics.update({f"{prefix}/{name}": v for name, v in summarise(
            judged, policy_lengths=policy_lengths, baseline_lengths=baseline_lengths,
            resamples=resamples, seed=seed, feature_gaps=feature_gaps).items()})
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
