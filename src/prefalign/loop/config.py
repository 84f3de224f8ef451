"""The settings of `prefalign iterate` (IterateConfig): one schema (see
`prefalign.core.settings`), composed of what each round's synth job takes (`SynthSettings`), the
shared sampling and back-end settings, and iterate's own: rounds, training, held-out eval."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from prefalign.core.settings import Routed, Settings, at_least, finite, one_of, redefault, setting
from prefalign.generation.settings import BackendSettings, SamplingSettings
from prefalign.synth.config import SynthSettings


def round_backends() -> list[str]:
    """The back ends that can load each round's new policy."""
    from prefalign.generation import registry

    return [b.name for b in registry.backends().values() if b.new_policy_each_round]


@dataclass
class IterateConfig(SynthSettings, SamplingSettings, BackendSettings):
    model: str = setting("", help="the starting policy: a model folder (hf, vllm); --scorer may "
                         "name each round's policy @policy and the loop's reference @ref "
                         "(train_args' ref_model, else this model)")
    eval_prompts: Any = setting(None, help="held-out prompts for the per-round eval (default: "
                                "none, eval skipped)")
    pool: list[str] = setting(
        help="sample each round from several models: [NAME=][COUNT*]SPEC, one member naming "
             "the round's policy @policy (e.g. policy=4*@policy, or vllm:@policy), the others "
             "fixed models; --n is then their sum (default: the policy alone)", factory=list)
    output: str = setting("runs/iterate", help="run folder: OUT/round-k/...")
    rounds: int = setting(2, help="number of rounds")
    # the generation back end, for synth and eval alike; each round loads the newest policy
    # into it (openai is refused: a server cannot load each new policy)
    backend: str = redefault(BackendSettings, "backend", "hf", help=(
        "generation back end each round loads its policy into, for synth and eval: "
        + " | ".join(round_backends())))
    dtype: str = redefault(BackendSettings, "dtype", "auto",
                           help="auto | float32 | bfloat16 | float16")
    # training (any TrainConfig field; objective hyperparameters such as beta go in objective_args)
    objective: str = setting("sigmoid", help="training objective, a name from `prefalign "
                             "objectives`")
    train_args: dict[str, Any] = setting(
        help="settings passed to each round's training (any TrainConfig field; a YAML mapping, "
             "or the --lr etc. flags)", factory=dict)
    # eval
    eval_scorer: str = setting("", help="scorer of the held-out eval (default: --scorer); "
                               "with a self-rewarding --scorer, e.g. the task's verifier")
    eval_n: int = setting(1, help="responses per held-out prompt")
    eval_temperature: float = setting(0.0, help="temperature of the held-out responses; 0 = "
                                      "greedy")
    pass_threshold: float = setting(1.0, help="a response passes at score >= this")
    progress: bool = setting(True, help="show progress bars")
    scorer_obj: Any = setting(None, help="a Scorer object used instead of --scorer (library "
                              "use)", repr=False)

    NO_FLAG = frozenset({"train_args"})
    REPEATED = SynthSettings.REPEATED | {"pool"}
    LIBRARY_ONLY = frozenset({"scorer_obj"})
    REQUIRED = ("model", "prompts", "scorer")


def _train_routes() -> dict:
    """iterate's --lr etc.: flags (and top-level YAML keys) for entries of train_args, with
    TrainConfig's help."""
    from prefalign.train.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    helps = {o.name: o.help for o in TrainConfig.options()}  # with its rule and default
    passed = {"lr": "lr", "max_steps": "max_steps", "train_batch_size": "batch_size",
              "epochs": "epochs", "grad_accum": "grad_accum", "max_length": "max_length"}
    routes = {name: Routed(("train_args", field), hints[field],
                           f"each round's training: {helps[field]}")
              for name, field in passed.items()}
    routes["beta"] = Routed(("train_args", "objective_args", "beta"), float,
                            "objective beta of each round's training; a number (default: the "
                            "objective's)")
    return routes


IterateConfig.ROUTED = _train_routes()


@dataclass
class CurveConfig(Settings):
    """`prefalign curve`: the over-optimisation curve of a run (`prefalign.loop.overoptimisation`)."""

    run: str = setting("", help="a folder `prefalign train` wrote (its checkpoints, final model "
                       "and config.json; a full-weight, unsharded run)")
    prompts: str = setting("", help="prompts to sample from at every point")
    scorer: str = setting("", help="the gold scorer spec (as synth's --scorer: a verifier, a "
                          "reward model, a judge)")
    proxy: str | None = setting(None, help="the proxy scorer the run optimised, scored on the "
                                "same samples (default: none)")
    output: str | None = setting(None, help="folder for curve.json and curve.png (default: "
                                 "RUN/curve)")
    num_samples: int = setting(4, help="samples per prompt at every point",
                               rule=(at_least(1), ">= 1"))
    max_new_tokens: int = setting(64, help="tokens per sample at most", rule=(at_least(1), ">= 1"))
    temperature: float = setting(1.0, help="sampling temperature (1: the KL estimate is "
                                 "unbiased)", rule=(lambda v: finite(v) and v >= 0, ">= 0"))
    seed: int = setting(0, help="sampling seed: the same draws at every point")
    kl: str = setting("k3", help="the KL estimate on the x axis: k3 (non-negative) or k1 (the "
                      "mean log-ratio, lighter-tailed when a sample is far likelier under the "
                      "reference); curve.json keeps both", rule=one_of("k1", "k3"))
    device: str | None = setting(None, help="cpu, cuda, ... (default: cuda when available)")

    REQUIRED = ("run", "prompts", "scorer")
