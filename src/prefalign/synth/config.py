"""The settings of `prefalign synth` (SynthConfig) and the part of them every iterate round
sets too (SynthSettings): one schema each (see `prefalign.core.settings`), composed with the
shared sampling and back-end settings of `prefalign.generation.settings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.core.settings import Settings, setting
from prefalign.generation.settings import BackendSettings, SamplingSettings, ServedSettings
from prefalign.scoring import registry as scorer_registry

from .filters import FilterSpec, parse_filter, pair_filters
from .pairs import PairOptions, strategy_names


def filter_names() -> tuple[str, ...]:
    return tuple(pair_filters())


@dataclass
class SynthSettings(Settings):
    """How one synth job samples, scores and pairs: `prefalign synth`'s, and each round's of
    `prefalign iterate`."""

    prompts: Any = setting("", help="prompts file (.jsonl/.json/.csv/.parquet/.txt) or saved "
                           "dataset folder")
    scorer: str = setting("", help="scorer spec, e.g. '0.7*verifier:pkg.mod:fn+0.3*rm:/path' "
                          f"(kinds: {', '.join(scorer_registry.kinds())}; docs/synth.md)")
    n: int = setting(8, help="samples per prompt")
    pairs: str = setting("west-of-n", help=f"pair strategy: {' | '.join(strategy_names())} "
                         "(docs/synth.md)")
    min_gap: float = setting(0.0, help="smallest score gap a pair may have")
    length_penalty: float = setting(0.0, help="score - LAMBDA * length before pairing")
    filters: list[str] = setting(
        help="a pair filter applied to the records, NAME or NAME:KEY=VALUE,...; in the order "
             f"given: {' | '.join(filter_names())} (docs/synth.md)", factory=list)
    prompt_field: str = setting("prompt", help="column holding the prompt")
    chunk_size: int = setting(32, help="prompts per durable chunk (a rerun resumes after the "
                              "last finished one)")
    batch_size: int = setting(16, help="rows (prompt x sample) per generate call, hf back end")
    revise: str = setting("", help="a model that critiques and rewrites each prompt's "
                          "lowest-scored response, the revision against the original becoming a "
                          "pair: a generator spec (hf:PATH, vllm:PATH, openai:URL#MODEL, "
                          "hf:@policy; default: none)")
    critic: str = setting("", help="with --revise: another model that writes the critique the "
                          "reviser revises by (a judge's critique): a generator spec as for "
                          "--revise (default: the reviser critiques itself)")

    FLAGS = {"filters": "--filter"}
    REPEATED = frozenset({"filters"})

    def filter_specs(self) -> list[FilterSpec]:
        """``filters`` read and checked (an unknown name or option is one line)."""
        return [parse_filter(spec) for spec in self.filters]


@dataclass
class SynthConfig(SynthSettings, SamplingSettings, BackendSettings, ServedSettings):
    model: str = setting("", help="model folder (hf, vllm) or served model name (openai); "
                         "required unless --pool")
    pool: list[str] = setting(
        help="sample from several models instead of --model: [NAME=][COUNT*]SPEC, COUNT "
             "samples per prompt from the generator SPEC (a model folder, hf:PATH, vllm:PATH, "
             "openai:URL#MODEL); --n is then their sum (docs/synth.md)", factory=list)
    output: str = setting("synth.jsonl", help="output file (.jsonl or .parquet)")
    label_threshold: float | None = setting(
        None, help="unpaired: label = score >= THRESHOLD (default: none; each prompt's best "
                   "response True, its worst False)")
    keep_whitespace_variants: bool = setting(
        False, help="pair responses that differ only in whitespace (dropped and counted "
                    "otherwise)")
    split: str | None = setting(None, help="split of a saved DatasetDict folder (default: its "
                                "only split)")
    limit: int | None = setting(None, help="use the first LIMIT prompts (default: all)")
    shard: str = setting("", help="I/N: be worker I (from 0) of N, sampling chunks I, I+N, ... "
                         "into its own log; the last to finish writes the output (default: "
                         "RANK/WORLD_SIZE under torchrun or accelerate launch, else one worker)")
    merge: bool = setting(False, help="build the output from the N workers' logs (--shard), "
                          "checking each holds its share; the same output every time")
    progress: bool = setting(True, help="show progress bars")
    # objects that replace the specs (library use and tests)
    generator: Any = setting(None, help="a Generator object used instead of --backend (library "
                             "use)", repr=False)
    scorer_obj: Any = setting(None, help="a Scorer object used instead of --scorer (library "
                              "use)", repr=False)
    reviser_obj: Any = setting(None, help="a Generator object used instead of --revise "
                               "(library use)", repr=False)
    critic_obj: Any = setting(None, help="a Generator object used instead of --critic "
                              "(library use)", repr=False)

    LIBRARY_ONLY = frozenset({"generator", "scorer_obj", "reviser_obj", "critic_obj"})
    REQUIRED = ("prompts", "scorer")
    REPEATED = SynthSettings.REPEATED | {"pool"}

    def pair_options(self) -> PairOptions:
        return PairOptions(self.pairs, min_gap=self.min_gap, length_penalty=self.length_penalty,
                           label_threshold=self.label_threshold, seed=self.seed,
                           keep_whitespace_variants=self.keep_whitespace_variants)

    def paths(self) -> tuple[Path, Path, Path]:
        out = Path(self.output)
        stem = out.name[:-len(out.suffix)] if out.suffix else out.name
        return out, out.with_name(out.name + ".progress.jsonl"), out.with_name(stem + ".manifest.json")
