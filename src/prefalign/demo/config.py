"""The settings of the demo room's commands: `prefalign demo` (DemoConfig, with the stage sizes
of its presets) and `prefalign tiny-model` (TinyModelConfig); one schema each (see
`prefalign.core.settings`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from prefalign.core.settings import Settings, at_least, one_of, optional, setting

from .tiny_models import FAMILIES, TOKENIZER_KINDS


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
    checkpoint_steps: int = 15  # a round's training saves (and keeps) one every so many steps
    curve_prompts: int = 100  # held-out prompts sampled at each point of the curve


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
                           "e.g. dpo,ipo,simpo,kto,orpo,cdpo, mixtures written with + "
                           "(0.8*sigmoid+0.2*bco_pair+sft) (default: none)")
    curve: bool = setting(
        True, help="draw each round's over-optimisation curve: verifier accuracy of samples "
                   "against KL to the round's starting policy, at every checkpoint (a few "
                   "seconds)")
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
class TinyModelConfig(Settings):
    """`prefalign tiny-model`'s settings (the rest of `build_tiny_model`'s are for tests)."""

    output: str = setting("", help="folder to write the model to")
    family: str = setting("llama", help="architecture", rule=one_of(*FAMILIES))
    tokenizer: str = setting("char", help="tokenizer kind", rule=one_of(*TOKENIZER_KINDS))
    hidden: int = setting(64, help="hidden size", rule=(at_least(8), ">= 8"))
    layers: int = setting(2, help="decoder layers", rule=(at_least(1), ">= 1"))
    seed: int = setting(0, help="seed of the random weights")


TinyModelConfig.POSITIONAL = ("output",)
TinyModelConfig.REQUIRED = ("output",)
