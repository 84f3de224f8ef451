"""`prefalign <command>`: every command is a thin shell over a library call.

Heavy imports (torch, transformers) happen inside the command functions so that `--help` and
`prefalign objectives` answer at once.
"""

from __future__ import annotations

import argparse
import sys


def _cmd_objectives(args: argparse.Namespace) -> int:
    from prefalign.objectives import table_text

    print(table_text())
    return 0


def _cmd_tiny_model(args: argparse.Namespace) -> int:
    from prefalign.tiny_models import build_tiny_model

    path = build_tiny_model(args.output, family=args.family, tokenizer=args.tokenizer,
                            hidden=args.hidden, layers=args.layers, seed=args.seed)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefalign",
        description="Align causal language models to preferences: synth, train, eval.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("objectives", help="list every objective with its needs and paper")
    p.set_defaults(func=_cmd_objectives)

    p = sub.add_parser("tiny-model", help="build a random-weight tiny model + tokenizer (offline)")
    p.add_argument("output", help="folder to write the model to")
    p.add_argument("--family", default="llama", choices=["llama", "qwen2", "mistral", "gemma"])
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tiny_model)

    for register in _COMMAND_REGISTRARS:
        register(sub)
    return parser


# Commands defined in other modules add themselves here (keeps this file a thin index).
_COMMAND_REGISTRARS: list = []


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
