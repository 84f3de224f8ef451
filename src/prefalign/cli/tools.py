"""`prefalign objectives` (the registry's table) and `prefalign tiny-model` (`TinyModelConfig`)."""

from __future__ import annotations

import argparse

from .schema import add_settings, settings_from


def _cmd_objectives(args: argparse.Namespace) -> int:
    from prefalign.objectives import table_text

    print(table_text())
    return 0


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from prefalign.demo.config import TinyModelConfig
    from prefalign.demo.tiny_models import build_tiny_model

    cfg = settings_from(TinyModelConfig, args)
    print(build_tiny_model(cfg.output, family=cfg.family, tokenizer=cfg.tokenizer,
                           hidden=cfg.hidden, layers=cfg.layers, seed=cfg.seed))
    return 0


def add_tool_parsers(sub) -> None:
    from prefalign.demo.config import TinyModelConfig

    p = sub.add_parser("objectives", help="list every objective with its needs and paper")
    p.set_defaults(func=_cmd_objectives)
    p = sub.add_parser("tiny-model", help="build a random-weight tiny model + tokenizer (offline)")
    add_settings(p, TinyModelConfig, config=False)
    p.set_defaults(func=_cmd_tiny_model)
