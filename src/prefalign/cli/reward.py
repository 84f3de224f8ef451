"""`prefalign rm train` (`RewardTrainConfig`) and `prefalign rm eval` (`RewardEvalConfig`)."""

from __future__ import annotations

import argparse
import json

from .schema import add_settings, settings_from


def _cmd_train(args: argparse.Namespace) -> int:
    from prefalign.reward.config import RewardTrainConfig
    from prefalign.reward.train import train_reward_model

    cfg = settings_from(RewardTrainConfig, args)
    summary = train_reward_model(cfg.model, cfg.data, cfg.output, **cfg.kwargs())
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from prefalign.reward.config import RewardEvalConfig
    from prefalign.reward.train import evaluate_reward_model

    cfg = settings_from(RewardEvalConfig, args)
    result = evaluate_reward_model(cfg.model, cfg.data, batch_size=cfg.batch_size,
                                   max_length=cfg.max_length)
    print(json.dumps(result, indent=2))
    if cfg.output:
        from prefalign.core.files import atomic_write_json

        atomic_write_json(cfg.output, result)
    if cfg.plot:
        from prefalign.eval.plots import reliability_plot

        reliability_plot(cfg.plot, result["calibration"]["reliability"],
                         ece=result["calibration"]["ece"])
    return 0


def add_rm_parser(sub) -> None:
    from prefalign.reward.config import RewardEvalConfig, RewardTrainConfig

    p = sub.add_parser("rm", help="train or evaluate a Bradley-Terry reward model")
    rm = p.add_subparsers(dest="rm_command", required=True, metavar="COMMAND")
    t = rm.add_parser("train", help="train a scalar-head reward model on pairwise data")
    add_settings(t, RewardTrainConfig)
    t.set_defaults(func=_cmd_train)
    e = rm.add_parser("eval", help="pairwise accuracy of a reward model")
    add_settings(e, RewardEvalConfig)
    e.set_defaults(func=_cmd_eval)
