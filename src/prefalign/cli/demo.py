"""`prefalign demo` (`DemoConfig`): the whole loop on a tiny model built from scratch."""

from __future__ import annotations

import argparse
import logging

from .schema import add_settings, parse_set, settings_from


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from prefalign.demo.compare import caveats, table_markdown
    from prefalign.demo.run import run_demo
    from prefalign.demo.report import stage_accuracies
    from prefalign.demo.config import DemoConfig

    cfg = settings_from(DemoConfig, args)
    cfg.objective_args = {**cfg.objective_args, **parse_set(args.set)}  # --set over the YAML
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "accelerate", "transformers", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hf_logging.disable_progress_bar()  # dozens of model loads and saves; the stages have bars
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    result = run_demo(cfg)
    s = result.summary
    print("\nheld-out accuracy (greedy, verifier):")
    for name, value in stage_accuracies(s):
        print(f"  {name:<14} {value:6.1%}")
    print(f"gain over SFT: {s['gain_points']:+.1f} points; "
          f"KL(policy || SFT) k1 {s['final_eval'].get('kl/k1', float('nan')):.3f}, "
          f"k3 {s['final_eval'].get('kl/k3', float('nan')):.3f} (from samples); "
          f"mean length {s['final_eval'].get('length/policy/mean', float('nan')):.2f} tokens; "
          f"{s['total_seconds']:.0f} s")
    if s.get("compare"):
        print("\n" + table_markdown(s["compare"]))
        for note in caveats(s["compare"]):
            print(note)
    print(f"\nreport: {result.output / 'report' / 'report.md'} (and report.html, demo.png)")
    return 0


def add_demo_parser(sub) -> None:
    from prefalign.demo.config import DemoConfig

    p = sub.add_parser(
        "demo", help="the whole loop on a tiny model built from scratch (CPU, minutes)",
        description="Build a tiny model, SFT it on imperfect addition demonstrations, synthesize "
                    "preferences with a verifier, train, evaluate and write a report.")
    add_settings(p, DemoConfig)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="objective hyperparameter, e.g. --set beta=0.5; repeatable (default: "
                        "the objective's defaults)")
    p.set_defaults(func=_cmd_demo)
