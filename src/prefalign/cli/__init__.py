"""`prefalign <command>`: every command is a thin shell over a library call, and its options
come from its settings class (`prefalign.core.settings`; `schema.py` makes the flags).

Heavy imports (torch, transformers) happen inside the command functions so that `--help` and
`prefalign objectives` answer at once. Nothing outside this package imports it.
"""

from __future__ import annotations

import argparse
import sys

from .data import add_data_parser
from .demo import add_demo_parser
from .evaluate import add_curve_parser, add_eval_parser, add_report_parser
from .reward import add_rm_parser
from .synth import add_iterate_parser, add_synth_parser
from .tools import add_tool_parsers
from .train import add_train_parser

# in the order `prefalign --help` lists them
COMMANDS = [add_train_parser, add_synth_parser, add_iterate_parser, add_eval_parser,
            add_report_parser, add_curve_parser, add_data_parser, add_rm_parser, add_demo_parser,
            add_tool_parsers]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefalign",
        description="Align causal language models to preferences: synth, train, eval.")
    parser.add_argument("--plugin", action="append", metavar="MODULE", default=None,
                        help="import this Python module first, so the scorers it registers "
                             "(docs/extending.md) can be named; repeatable; it runs that "
                             "module's code (default: none)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


# Errors that carry a message meant for the user (bad data, wrong flags, missing files, a file
# system or a server that said no: OSError, the HTTP back end's errors included): printed as one
# line; PREFALIGN_DEBUG=1 shows the traceback. Anything else is a bug and raises as is.
USER_ERRORS = (ValueError, OSError, ImportError)


def load_plugins(modules: list[str] | None) -> None:
    """Import the modules named by --plugin (the user's explicit choice to run their code)."""
    import importlib

    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ImportError(f"--plugin {name}: cannot import it ({e})") from None
        except ValueError:
            raise  # its own message (a name registered twice, ...)
        except Exception as e:  # the module's own error: one line (PREFALIGN_DEBUG=1: traceback)
            where = f", line {e.lineno}" if isinstance(e, SyntaxError) and e.lineno else ""
            raise ImportError(f"--plugin {name}: importing it failed{where}: "
                              f"{type(e).__name__}: {e}") from e


def main(argv: list[str] | None = None) -> int:
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        load_plugins(args.plugin)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if os.environ.get("PREFALIGN_DEBUG"):
            raise
        command = " ".join(c for c in (args.command, getattr(args, "rm_command", None),
                                       getattr(args, "data_command", None)) if c)
        print(f"prefalign {command}: error: {e}", file=sys.stderr)
        print("(PREFALIGN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
