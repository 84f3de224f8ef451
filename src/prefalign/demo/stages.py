"""What the demo's stages and its `--compare` runs share: the sizes and settings, the preference
training settings, the evaluation against the SFT policy and its win-rate judge."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prefalign.core.settings import Settings, at_least, optional, setting
from prefalign.demo.addition import TaskFiles, is_correct


@dataclass(frozen=True)
class DemoSizes:
    """How big each stage is; `FULL` is the README demo, `QUICK` the CI-sized one."""

    hidden: int = 128
    layers: int = 3
    sft_examples: int = 20000
    sft_steps: int = 1500
    sft_batch: int = 128
    sft_lr: float = 1e-3
    synth_prompts: int = 1500
    heldout: int = 300
    n: int = 8  # samples per prompt
    rounds: int = 2
    lr: float = 1e-4
    batch: int = 32
    epochs: float = 2.0
    eval_samples: int = 2  # sampled responses per held-out prompt for KL and lengths


FULL = DemoSizes()
QUICK = replace(FULL, sft_steps=500, sft_examples=8000, synth_prompts=600, heldout=200, rounds=1)


@dataclass
class DemoConfig(Settings):
    output: str = setting("runs/demo", help="run folder")
    quick: bool = setting(False, help="smaller, for CI (under 2 minutes)")
    seed: int = setting(0, help="seed of every stage")
    objective: str = setting(  # DPO plus NLL on the chosen response; see docs/demo.md
        "rpo", help="preference objective for the rounds (rpo = DPO + NLL)")
    objective_args: dict[str, Any] = setting(
        factory=dict, help="objective hyperparameters (YAML mapping; on the command line --set "
                           "KEY=VALUE)")
    rounds: int | None = setting(  # default: the preset's
        None, help="synth -> train rounds (default: 2, quick: 1)",
        rule=(optional(at_least(1)), ">= 1, or null"))
    compare: list[str] = setting(
        factory=list, help="comma-separated objectives to train on round 1's data and tabulate, "
                           "e.g. dpo,ipo,simpo,kto,orpo,cdpo (default: none)")
    progress: bool = setting(True, help="show progress bars")
    threads: int = setting(0, help="torch threads; 0 = torch's own choice",
                           rule=(at_least(0), ">= 0"))
    sizes: DemoSizes | None = setting(  # overrides the preset (tests)
        None, help="stage sizes replacing the preset's (library use)")

    def resolved_sizes(self) -> DemoSizes:
        sizes = self.sizes or (QUICK if self.quick else FULL)
        return replace(sizes, rounds=self.rounds) if self.rounds is not None else sizes


DemoConfig.NO_FLAG = frozenset({"objective_args"})
DemoConfig.LIBRARY_ONLY = frozenset({"sizes"})


@dataclass
class DemoResult:
    output: Path
    summary: dict[str, Any]


def verifier_compare(prompt: str, policy_response: str, reference_response: str) -> int:
    """Win-rate judge for the demo: +1 if only the policy is right, -1 if only the reference."""
    return int(is_correct(prompt, policy_response)) - int(is_correct(prompt, reference_response))


def preference_train_args(sizes: DemoSizes, objective_args: dict) -> dict:
    """TrainConfig fields shared by every preference run of the demo (rounds and --compare)."""
    return {"lr": sizes.lr, "batch_size": sizes.batch, "epochs": sizes.epochs,
            "scheduler": "constant", "logging_steps": 5, "objective_args": dict(objective_args)}


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
