"""`prefalign synth` (`SynthConfig`) and `prefalign iterate` (`IterateConfig`, plus the training
settings each round passes on, with `TrainConfig`'s help)."""

from __future__ import annotations

import argparse

from .schema import add_settings, settings_from


def _cmd_synth(args: argparse.Namespace) -> int:
    from prefalign.synth import SynthConfig, run_synth

    from prefalign.synth.shards import from_launcher

    cfg = settings_from(SynthConfig, args)
    if not cfg.shard and not cfg.merge:  # under torchrun / accelerate launch: one share each
        cfg.shard = from_launcher()
    result = run_synth(cfg)
    c = result.counts
    if c.get("merged") is False:
        print(f"worker {c['shard']}: {c['prompts']} prompts (resumed {c['resumed_prompts']}) "
              "in its log; the output is written by the last worker to finish, or by "
              "--merge")
        return 0
    print(f"prompts {c['prompts']} (resumed {c['resumed_prompts']}), generated {c['generated']}, "
          f"scored {c['scored']}, unscored {c['unscored']} (non-finite {c['non_finite']}), "
          f"empty {c['empty']}, records {c['records']}, dropped {c['dropped']}")
    for f in c.get("filters", []):  # each filter's own line: nothing it dropped goes unseen
        print(f"filter {f['filter']}: {f['records_in']} records in, {f['kept']} kept, dropped "
              f"{f['dropped']}")
    print(f"wrote {result.output}; manifest {result.manifest}")
    return 0


def add_synth_parser(sub) -> None:
    from prefalign.synth import SynthConfig

    p = sub.add_parser(
        "synth", help="sample N responses per prompt, score them, write preference pairs",
        description="Resumable: rerun the same command after an interruption to continue.")
    add_settings(p, SynthConfig)
    p.set_defaults(func=_cmd_synth)


def _cmd_iterate(args: argparse.Namespace) -> int:
    from prefalign.loop import IterateConfig, run_iterate
    from prefalign.loop.iterate import check_train_args

    cfg = settings_from(IterateConfig, args)  # --lr etc. are entries of train_args (ROUTED)
    origins = {k.split(".", 1)[1]: v for k, v in cfg.origins.items()
               if k.startswith("train_args.")}
    check_train_args(cfg, origins)  # typed and checked before any round, naming flag or line
    result = run_iterate(cfg)
    for info in result.rounds:
        ev = info.get("eval") or {}
        print(f"round {info['round']}: records {info['records']}, train steps "
              f"{info['train_steps']}, mean score {ev.get('mean_score')}, "
              f"pass rate {ev.get('pass_rate')}")
    print(f"final policy: {result.policy}")
    return 0


def add_iterate_parser(sub) -> None:
    from prefalign.loop import IterateConfig

    p = sub.add_parser(
        "iterate", help="K rounds of synth -> train -> eval from the newest policy",
        description="Resumable per round: finished rounds are skipped on rerun.")
    add_settings(p, IterateConfig)
    p.set_defaults(func=_cmd_iterate)
