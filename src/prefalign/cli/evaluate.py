"""`prefalign eval` (`EvalConfig`) and `prefalign report` (`ReportConfig`)."""

from __future__ import annotations

import argparse
import json

from .schema import add_settings, settings_from


def _cmd_eval(args: argparse.Namespace) -> int:
    from prefalign.eval.config import EvalConfig
    from prefalign.eval.policy import evaluate_policy

    cfg = settings_from(EvalConfig, args)
    result = evaluate_policy(cfg.model, cfg.data, **cfg.kwargs())
    print(json.dumps(result["metrics"], indent=2))
    for w in result["warnings"]:
        print(f"warning: {w}")
    print(f"wrote {cfg.output}/eval.json")
    return 0


def _cmd_curve(args: argparse.Namespace) -> int:
    from prefalign.loop.config import CurveConfig
    from prefalign.loop.overoptimisation import overoptimisation_curve

    cfg = settings_from(CurveConfig, args)
    summary = overoptimisation_curve(cfg.run, cfg.prompts, scorer=cfg.scorer, proxy=cfg.proxy,
                                     output=cfg.output, num_samples=cfg.num_samples,
                                     max_new_tokens=cfg.max_new_tokens,
                                     temperature=cfg.temperature, seed=cfg.seed, kl=cfg.kl,
                                     device=cfg.device)
    for row in summary["points"]:
        extra = f", proxy {row['proxy']}" if "proxy" in row else ""
        print(f"step {row['step']}: KL ({cfg.kl}) {row['kl']:.4f}, gold {row['gold']}{extra}")
    return 0


def add_curve_parser(sub) -> None:
    from prefalign.loop.config import CurveConfig

    p = sub.add_parser("curve", help="the over-optimisation curve of a run: gold (and proxy) "
                                     "score against KL over its checkpoints")
    add_settings(p, CurveConfig)
    p.set_defaults(func=_cmd_curve)


def add_eval_parser(sub) -> None:
    from prefalign.eval.config import EvalConfig

    p = sub.add_parser("eval", help="diagnostics of a policy on preference data and prompts "
                                    "(ranking accuracy, implicit rewards, KL, lengths, win rate)")
    add_settings(p, EvalConfig)
    p.set_defaults(func=_cmd_eval)


def _cmd_report(args: argparse.Namespace) -> int:
    from prefalign.eval.config import ReportConfig
    from prefalign.eval.report import build_report

    cfg = settings_from(ReportConfig, args)
    summary = build_report(cfg.run_dir, eval_json=cfg.eval_json, output=cfg.output)
    out = cfg.output or f"{cfg.run_dir}/report"
    print(f"wrote {out}/report.md, report.html, report.json and {len(summary['plots'])} plots")
    return 0


def add_report_parser(sub) -> None:
    from prefalign.eval.config import ReportConfig

    p = sub.add_parser("report", help="plots and tables of a training run")
    add_settings(p, ReportConfig, config=False)
    p.set_defaults(func=_cmd_report)
