"""Synthetic preference data: sample, score, pair.

    from prefalign.synth import SynthConfig, run_synth
    result = run_synth(SynthConfig(model="path/to/model", prompts="prompts.jsonl",
                                   scorer="verifier:mypkg.checks:exact_sum", n=8,
                                   pairs="west-of-n", output="pairs.jsonl"))

Sampling back ends are in `prefalign.generation`, scorers in `prefalign.scoring`. See
docs/synth.md for back ends, the scorer grammar, pair strategies and resuming. The
synth -> train -> eval rounds (`run_iterate`) are in `prefalign.loop`.
"""

from .config import SynthConfig, SynthSettings
from .job import SynthResult, run_synth
from .pairs import PairOptions, build_records
from .prompts import read_prompts
from .strategies import pair_strategies, pair_strategy

__all__ = [
    "SynthConfig", "SynthSettings", "SynthResult", "run_synth", "PairOptions", "build_records", "read_prompts",
    "pair_strategy", "pair_strategies",
]
