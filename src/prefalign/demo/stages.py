"""What the demo's stages and its `--compare` runs share: the preference training settings, the
evaluation against the SFT policy and its win-rate judge (the sizes and settings: config.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.demo.addition import TaskFiles, is_correct

from .config import DemoConfig, DemoSizes


@dataclass
class DemoResult:
    output: Path
    summary: dict[str, Any]


def verifier_compare(prompt: str, policy_response: str, reference_response: str) -> int:
    """Win-rate judge for the demo: +1 if only the policy is right, -1 if only the reference."""
    return int(is_correct(prompt, policy_response)) - int(is_correct(prompt, reference_response))


def preference_train_args(sizes: DemoSizes, objective_args: dict, *,
                          checkpoints: bool = False) -> dict:
    """TrainConfig fields shared by every preference run of the demo (rounds and --compare);
    ``checkpoints``: every ``sizes.checkpoint_steps`` steps, all kept (the points of the
    over-optimisation curve)."""
    args = {"lr": sizes.lr, "batch_size": sizes.batch, "epochs": sizes.epochs,
            "scheduler": "constant", "logging_steps": 5, "objective_args": dict(objective_args)}
    if checkpoints and sizes.checkpoint_steps:
        args.update(save_steps=sizes.checkpoint_steps, save_total_limit=1000)
    return args


def evaluate(policy: str, sft_model: str, pairs: str | None, files: TaskFiles, out: Path,
             sizes: DemoSizes, cfg: DemoConfig, beta: float) -> dict:
    """`evaluate_policy` against the SFT policy; returns the metrics (eval.json has the rest)."""
    from prefalign.eval import evaluate_policy

    result = evaluate_policy(policy, pairs, ref_path=sft_model, prompts=str(files.heldout), beta=beta,
                             num_samples=sizes.eval_samples, max_new_tokens=8, temperature=1.0,
                             seed=cfg.seed, compare=verifier_compare, output=out,
                             sample_batch_size=512)
    metrics = dict(result["metrics"])
    ref_lengths = result["lengths"].get("reference")
    if ref_lengths:  # the SFT policy's answers, sampled for the win rate
        metrics["length/reference/mean"] = sum(ref_lengths) / len(ref_lengths)
    return metrics


def difficulty(eval_json: Path, pairs: str | None) -> dict | None:
    """The final eval's per-pair difficulty (`prefalign.eval.metrics.pair_difficulty`, against
    the SFT policy) with each hardest pair's text from the held-out pairs; None without pairs."""
    if pairs is None or not eval_json.is_file():
        return None
    evaluation = json.loads(eval_json.read_text())
    metrics = evaluation.get("metrics", {})
    if "difficulty/fixed" not in metrics:
        return None
    rows = Path(pairs).read_text().splitlines()
    hardest = []
    for h in evaluation.get("hardest_pairs", []):
        record = json.loads(rows[h["pair"]]) if 0 <= h["pair"] < len(rows) else {}
        hardest.append({**h, **{k: record.get(k) for k in ("prompt", "chosen", "rejected")}})
    return {"pairs": evaluation.get("counts", {}).get("pairs", len(rows)),
            "reference_wrong": metrics["difficulty/reference_wrong"],
            "fixed": metrics["difficulty/fixed"], "broken": metrics["difficulty/broken"],
            "hardest_pairs": hardest}
