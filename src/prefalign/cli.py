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


# Flags that map straight onto TrainConfig fields (flag name -> field, type).
_TRAIN_FLAGS = [
    ("--model", "model", str), ("--data", "data", str), ("--objective", "objective", str),
    ("--output", "output", str), ("--ref-model", "ref_model", str),
    ("--reference", "reference", str), ("--eval-data", "eval_data", str),
    ("--batch-size", "batch_size", int), ("--grad-accum", "grad_accum", int),
    ("--lr", "lr", float), ("--epochs", "epochs", float), ("--max-steps", "max_steps", int),
    ("--max-length", "max_length", int), ("--max-prompt-length", "max_prompt_length", int),
    ("--truncation", "truncation", str), ("--on-error", "on_error", str),
    ("--seed", "seed", int), ("--warmup-steps", "warmup_steps", int),
    ("--warmup-ratio", "warmup_ratio", float), ("--scheduler", "scheduler", str),
    ("--weight-decay", "weight_decay", float), ("--max-grad-norm", "max_grad_norm", float),
    ("--dtype", "dtype", str), ("--attn-implementation", "attn_implementation", str),
    ("--chunk-tokens", "chunk_tokens", int), ("--row-tokens", "row_tokens", int),
    ("--max-tokens-per-batch", "max_tokens_per_batch", int),
    ("--lora-r", "lora_r", int), ("--lora-alpha", "lora_alpha", int),
    ("--lora-dropout", "lora_dropout", float), ("--save-steps", "save_steps", int),
    ("--eval-steps", "eval_steps", int), ("--logging-steps", "logging_steps", int),
    ("--cache-dir", "cache_dir", str),
    ("--router-aux-loss-coef", "router_aux_loss_coef", float),
]
_TRAIN_SWITCHES = [
    ("--lora", "lora"), ("--qlora", "qlora"), ("--merge-lora", "merge_lora"), ("--bf16", "bf16"),
    ("--gradient-checkpointing", "gradient_checkpointing"),
    ("--trust-remote-code", "trust_remote_code"),
]
# Objective hyperparameters with a flag of their own (TRL's names); others go through --set.
_OBJECTIVE_FLAGS = [("--beta", "beta"), ("--label-smoothing", "label_smoothing"),
                    ("--simpo-gamma", "simpo_gamma"), ("--ld-alpha", "ld_alpha"),
                    ("--rpo-alpha", "rpo_alpha")]


def _parse_value(text: str):
    """A ``--set`` value: a YAML scalar or list (true, null, 0.5, [a, b]); anything YAML cannot
    read stays text. The objective's declared type then decides (``1e-3`` is a number)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _cmd_train(args: argparse.Namespace) -> int:
    from prefalign.train import TrainConfig, train

    overrides = {field: getattr(args, field) for _, field, _ in _TRAIN_FLAGS}
    for _, field in _TRAIN_SWITCHES:
        if getattr(args, field):
            overrides[field] = True
    if args.no_reference:
        overrides["reference"] = "none"
    if args.no_progress:
        overrides["progress"] = False
    if args.overwrite:
        overrides["overwrite"] = True
    if args.report_to:
        overrides["report_to"] = args.report_to.split(",")
    cfg = TrainConfig.from_sources(args.config, **overrides)
    extra = dict(cfg.objective_args)
    for flag, name in _OBJECTIVE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            extra[name] = value
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        extra[key.strip().replace("-", "_")] = _parse_value(value)
    cfg.objective_args = extra
    missing = [f for f in ("model", "data") if not getattr(cfg, f)]
    if missing:
        raise SystemExit(f"prefalign train: --{missing[0]} is required (or set it in --config)")
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


def train_flag_help(field: str) -> str:
    """A train flag's help from the one schema, `TrainConfig`: what the field is
    (``FIELD_HELP``), the values it accepts (its validation rule, else its type) and its
    default. ``%`` is escaped for argparse."""
    import dataclasses

    from prefalign.train import config as C

    spec = {f.name: f for f in dataclasses.fields(C.TrainConfig)}[field]
    default = (spec.default if spec.default is not dataclasses.MISSING
               else spec.default_factory())
    text = C.FIELD_HELP.get(field, field.replace("_", " "))  # a test checks every field has one
    rule = C._RULES.get(field)
    if rule is not None:
        text += f"; {rule[1]}"
    if isinstance(default, bool):
        text += " (default: off)" if not default else " (default: on)"
    elif default in (None, "", [], {}):
        if "default" not in text and "required" not in text:
            text += " (default: none)"
    elif "default:" not in text:
        text += f" (default {default})"
    return text.replace("%", "%%")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a policy with a DPO-family objective",
                       description="Every option is a TrainConfig field (YAML key in --config: "
                                   "the flag without -- and with _ for -); flags override YAML.")
    p.add_argument("--config", help="YAML file of TrainConfig options; flags override it "
                                    "(default: none)")
    for flag, field, typ in _TRAIN_FLAGS:
        p.add_argument(flag, dest=field, type=typ, default=None, help=train_flag_help(field))
    for flag, field in _TRAIN_SWITCHES:
        p.add_argument(flag, dest=field, action="store_true", help=train_flag_help(field))
    p.add_argument("--no-reference", action="store_true",
                   help="train without a reference model (reference-free objectives only); "
                        "the same as --reference none")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--overwrite", action="store_true",
                   help="delete what an earlier run left in --output (its checkpoints, metrics, "
                        "model, run.json) and train from the start. Without it, --output resumes "
                        "only the same run (same model and data contents, objective and settings), "
                        "a finished one is left as it is, and any other run is refused")
    p.add_argument("--report-to", help="comma-separated trackers: tensorboard, wandb "
                                       "(default: none)")
    for flag, name in _OBJECTIVE_FLAGS:
        p.add_argument(flag, dest=name, type=float, default=None,
                       help=f"objective hyperparameter {name}, for the objectives that take it "
                            "(default: the objective's, see `prefalign objectives`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any objective hyperparameter, e.g. --set f_divergence_type=js_divergence;"
                        " repeatable (default: the objective's defaults)")
    p.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefalign",
        description="Align causal language models to preferences: synth, train, eval.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("objectives", help="list every objective with its needs and paper")
    p.set_defaults(func=_cmd_objectives)

    p = sub.add_parser("tiny-model", help="build a random-weight tiny model + tokenizer (offline)")
    p.add_argument("output", help="folder to write the model to")
    p.add_argument("--family", default="llama",
                   choices=["llama", "qwen2", "mistral", "gemma", "gemma2"],
                   help="architecture: %(choices)s (default %(default)s)")
    p.add_argument("--tokenizer", default="char",
                   choices=["char", "bpe", "metaspace", "word"],
                   help="tokenizer kind: %(choices)s (default %(default)s)")
    p.add_argument("--hidden", type=int, default=64, help="hidden size (default %(default)s)")
    p.add_argument("--layers", type=int, default=2, help="decoder layers (default %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random weights (default %(default)s)")
    p.set_defaults(func=_cmd_tiny_model)

    for register in _COMMAND_REGISTRARS:
        register(sub)
    return parser


# Commands defined in other modules add themselves here (keeps this file a thin index).
def _add_eval_commands(sub) -> None:
    from prefalign.eval.cli import add_eval_parser, add_report_parser
    from prefalign.reward.cli import add_rm_parser

    add_eval_parser(sub)
    add_report_parser(sub)
    add_rm_parser(sub)


def _add_synth_commands(sub) -> None:
    from prefalign.synth.cli import add_iterate_parser, add_synth_parser

    add_synth_parser(sub)
    add_iterate_parser(sub)


def _add_demo_command(sub) -> None:
    from prefalign.demo.cli import add_demo_parser

    add_demo_parser(sub)


_COMMAND_REGISTRARS: list = [_add_train, _add_synth_commands, _add_eval_commands,
                             _add_demo_command]


# Errors that carry a message meant for the user (bad data, wrong flags, missing files, a file
# system or a server that said no: OSError, the HTTP back end's errors included): printed as one
# line; PREFALIGN_DEBUG=1 shows the traceback. Anything else is a bug and raises as is.
USER_ERRORS = (ValueError, OSError, ImportError)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if os.environ.get("PREFALIGN_DEBUG"):
            raise
        print(f"prefalign {args.command}: error: {e}", file=sys.stderr)
        print("(PREFALIGN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
