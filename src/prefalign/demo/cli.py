"""`prefalign demo [--quick] [--compare dpo,ipo,...]`."""

from __future__ import annotations

import argparse
import logging


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from .compare import check_names, table_markdown
    from .pipeline import DemoConfig, run_demo
    from .report import stage_accuracies

    from transformers.utils import logging as hf_logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "accelerate", "transformers", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hf_logging.disable_progress_bar()  # dozens of model loads and saves; the stages have bars
    if args.threads:
        torch.set_num_threads(args.threads)
    compare = check_names(args.compare.split(",")) if args.compare else []
    extra = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        import yaml

        extra[key.strip().replace("-", "_")] = yaml.safe_load(value)
    result = run_demo(DemoConfig(output=args.output, quick=args.quick, seed=args.seed,
                                 objective=args.objective, objective_args=extra,
                                 rounds=args.rounds, compare=compare,
                                 progress=not args.no_progress))
    s = result.summary
    print("\nheld-out accuracy (greedy, verifier):")
    for name, value in stage_accuracies(s):
        print(f"  {name:<14} {value:6.1%}")
    print(f"gain over SFT: {s['gain_points']:+.1f} points; "
          f"KL(policy || SFT) {s['final_eval'].get('kl/k3', float('nan')):.3f}; "
          f"mean length {s['final_eval'].get('length/policy/mean', float('nan')):.2f} tokens; "
          f"{s['total_seconds']:.0f} s")
    if s.get("compare"):
        print("\n" + table_markdown(s["compare"]))
    print(f"\nreport: {result.output / 'report' / 'report.md'} (and report.html, demo.png)")
    return 0


def add_demo_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="the whole loop on a tiny model built from scratch (CPU, minutes)",
        description="Build a tiny model, SFT it on imperfect addition demonstrations, synthesize "
                    "preferences with a verifier, train, evaluate and write a report.")
    p.add_argument("--output", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="smaller, for CI (under 2 minutes)")
    p.add_argument("--objective", default="rpo",
                   help="preference objective for the rounds (default: rpo = DPO + NLL)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="objective hyperparameter, e.g. --set beta=0.5; repeatable (default: "
                        "the objective's defaults)")
    p.add_argument("--rounds", type=int, help="synth -> train rounds (default: 2, quick: 1)")
    p.add_argument("--compare", help="comma-separated objectives to train on round 1's data "
                                     "and tabulate, e.g. dpo,ipo,simpo,kto,orpo,cdpo "
                                     "(default: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage (default 0)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads; 0 = torch's own choice (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_demo)
    return p
