"""`prefalign train`: its options are `TrainConfig`'s fields; objective hyperparameters come as
--beta etc. (TRL's names; `TrainConfig.ROUTED`) or --set KEY=VALUE and are checked against the
objective's ranges."""

from __future__ import annotations

import argparse

from .schema import add_settings, parse_set, routed_flags, settings_from

def apply_set(cfg, args: argparse.Namespace) -> dict[str, str]:
    """``--set KEY=VALUE`` items over ``cfg.objective_args``; a name also given by its own flag
    (--beta and --set beta) is refused rather than one silently winning. Returns where each
    objective hyperparameter came from (for the range check's errors)."""
    from prefalign.train.config import TrainConfig

    sets = parse_set(getattr(args, "set", None))
    flags = routed_flags(TrainConfig, args, "objective_args")
    twice = sorted(set(flags) & set(sets))
    if twice:
        raise ValueError(f"{', '.join(twice)} given both as a flag and in --set; give it once")
    cfg.objective_args = {**cfg.objective_args, **sets}
    origins = {k: v for k, v in cfg.origins.items() if k.startswith("objective_args.")}
    origins.update({f"objective_args.{k}": f"--set {k}" for k in sets})
    return origins


def add_set_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any objective hyperparameter, e.g. --set f_divergence_type=js_divergence;"
                        " repeatable; in --config, the objective_args mapping (default: the "
                        "objective's defaults)")


def _cmd_train(args: argparse.Namespace) -> int:
    from prefalign.train import TrainConfig, train

    from prefalign.compat.trl_fields import read_trl_yaml

    # a TRL recipe (`trl dpo --config FILE`, TRL's names) is read as TRL would; checked once,
    # with --set's values
    cfg = settings_from(TrainConfig, args, check=False, yaml_dialect=read_trl_yaml)
    cfg.validate({**cfg.origins, **apply_set(cfg, args)})
    result = train(cfg)
    if result.already_done:
        print(f"{result.output_dir} already holds this run, finished ({result.steps} steps): "
              f"nothing to do; model in {result.output_dir / 'model'} (--overwrite trains it "
              "again; a new --output with --model OUTPUT/model continues from it)")
        return 0
    if result.data_summary:
        print(result.data_summary)
    print(f"trained {result.steps} steps; model in {result.output_dir / 'model'}; "
          f"metrics in {result.output_dir / 'metrics.jsonl'}")
    if result.phase_seconds:
        print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.phase_seconds.items()))
    return 0


def add_train_parser(sub) -> None:
    from prefalign.train.config import TrainConfig

    p = sub.add_parser("train", help="train a policy with a DPO-family objective",
                       description="Every option is a TrainConfig field (YAML key in --config: "
                                   "the flag without -- and with _ for -); flags override YAML. "
                                   "A --config in TRL's form (`trl dpo --config FILE`: "
                                   "learning_rate, loss_type, model_name_or_path, ...) is read "
                                   "with TRL's names and defaults (docs/trl.md). docs/cli.md "
                                   "lists every option.")
    add_settings(p, TrainConfig)
    add_set_flag(p)
    p.set_defaults(func=_cmd_train)
