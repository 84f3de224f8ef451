"""Evaluation and diagnostics: log-prob metrics, win rates, preference-leakage checks, policy
evaluation and training reports.

    from prefalign.eval import evaluate_policy, build_report
    result = evaluate_policy("run/model", "pairs.jsonl", ref_path="base", prompts="prompts.jsonl")
    build_report("run")          # run/report/report.md, report.html, report.json, *.png

See docs/eval.md for every metric's formula.
"""

from .leakage import PreferenceLeakageWarning, preference_leakage
from .metrics import (
    alignment_gap, idealized_ranking_accuracy, implicit_reward_metrics, kl_from_samples,
    length_stats, likelihood_displacement, preference_probability, ranking_accuracy,
    token_stat_summary)
from .winrate import compare_all, outcomes_from_scores, win_rate


def evaluate_policy(*args, **kwargs):
    """See `prefalign.eval.policy.evaluate_policy` (imported lazily: it loads transformers)."""
    from .policy import evaluate_policy as run

    return run(*args, **kwargs)


def build_report(*args, **kwargs):
    """See `prefalign.eval.report.build_report` (imported lazily: it loads matplotlib)."""
    from .report import build_report as run

    return run(*args, **kwargs)


__all__ = [
    "implicit_reward_metrics", "ranking_accuracy", "idealized_ranking_accuracy",
    "preference_probability", "alignment_gap", "kl_from_samples", "length_stats",
    "likelihood_displacement", "token_stat_summary",
    "win_rate", "outcomes_from_scores", "compare_all",
    "preference_leakage", "PreferenceLeakageWarning",
    "evaluate_policy", "build_report",
]
