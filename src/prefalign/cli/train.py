"""`prefalign train`: its options are `TrainConfig`'s fields; objective hyperparameters come as
--beta etc. (TRL's names) or --set KEY=VALUE and are checked against the objective's ranges."""

from __future__ import annotations

import argparse

from .schema import add_settings, parse_set, settings_from

# Objective hyperparameters with a flag of their own (TRL's names); others go through --set.
OBJECTIVE_FLAGS = [("--beta", "beta"), ("--label-smoothing", "label_smoothing"),
                   ("--simpo-gamma", "simpo_gamma"), ("--ld-alpha", "ld_alpha"),
                   ("--rpo-alpha", "rpo_alpha")]


def objective_args(args: argparse.Namespace, base: dict | None = None) -> tuple[dict, dict]:
    """``base`` updated by the objective flags, then by ``--set`` items; a name given twice (a
    flag and --set) is refused rather than one silently winning. Returns the values and where
    each came from (for the range check's errors)."""
    out = dict(base or {})
    flags = {name: getattr(args, name) for _, name in OBJECTIVE_FLAGS
             if getattr(args, name, None) is not None}
    sets = parse_set(getattr(args, "set", None))
    twice = sorted(set(flags) & set(sets))
    if twice:
        raise ValueError(f"{', '.join(twice)} given both as a flag and in --set; give it once")
    out.update(flags)
    out.update(sets)
    flag_of = {name: flag for flag, name in OBJECTIVE_FLAGS}
    origins = {f"objective_args.{k}": flag_of[k] for k in flags}
    origins.update({f"objective_args.{k}": f"--set {k}" for k in sets})
    return out, origins


def add_objective_flags(p: argparse.ArgumentParser) -> None:
    for flag, name in OBJECTIVE_FLAGS:
        p.add_argument(flag, dest=name, type=float, default=None,
                       help=f"objective hyperparameter {name}, for the objectives that take it "
                            "(default: the objective's, see `prefalign objectives`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any objective hyperparameter, e.g. --set f_divergence_type=js_divergence;"
                        " repeatable (default: the objective's defaults)")


def _cmd_train(args: argparse.Namespace) -> int:
    from prefalign.train import TrainConfig, train

    extra = {"reference": "none"} if args.no_reference else {}
    cfg = settings_from(TrainConfig, args, **extra)
    cfg.objective_args, origins = objective_args(args, cfg.objective_args)
    cfg.validate(origins)
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
                                   "docs/cli.md lists them all.")
    add_settings(p, TrainConfig)
    p.add_argument("--no-reference", action="store_true",
                   help="train without a reference model (reference-free objectives only); "
                        "the same as --reference none")
    add_objective_flags(p)
    p.set_defaults(func=_cmd_train)
