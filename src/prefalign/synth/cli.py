"""`prefalign synth` and `prefalign iterate`: thin shells over `run_synth` and `run_iterate`.

The main CLI registers them with ``add_synth_parser(sub)`` and ``add_iterate_parser(sub)``;
``python -m prefalign.synth.cli synth|iterate ...`` runs them standalone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from prefalign.generation.options import BACKEND_FLAGS

# flag -> (SynthConfig/IterateConfig field, type, help)
_COMMON = [
    ("--model", "model", str, "model folder (hf, vllm) or served model name (openai); required"),
    ("--prompts", "prompts", str, "prompts file (.jsonl/.json/.csv/.parquet) or saved dataset "
                                  "folder; required"),
    ("--scorer", "scorer", str, "scorer spec, e.g. '0.7*verifier:pkg.mod:fn+0.3*rm:/path' "
                                "(kinds: verifier, tests, rm, judge, pairjudge, flr, cdr, "
                                "implicit); required"),
    ("--n", "n", int, "samples per prompt (default 8)"),
    ("--pairs", "pairs", str, "west-of-n | best-vs-random | best-vs-second | sweet-spot | "
                              "all-pairs | ranked | unpaired (default west-of-n)"),
    ("--min-gap", "min_gap", float, "smallest score gap a pair may have (default 0)"),
    ("--length-penalty", "length_penalty", float, "score - LAMBDA * length before pairing "
                                                  "(default 0)"),
    ("--temperature", "temperature", float, "0 = greedy (default 0.8)"),
    ("--top-p", "top_p", float, "nucleus sampling, in (0, 1]; 1 = off (default 1)"),
    ("--top-k", "top_k", int, "sample from the K likeliest tokens; 0 = off (default 0)"),
    ("--max-new-tokens", "max_new_tokens", int, "tokens per response at most (default 256)"),
    ("--seed", "seed", int, "base seed; sample j of prompt i uses hash(seed, i, j) (default 0)"),
    ("--chunk-size", "chunk_size", int, "prompts per durable chunk (default 32)"),
    ("--batch-size", "batch_size", int, "rows per generate call, hf back end (default 16)"),
    ("--device", "device", str, "hf back end and model scorers: cpu, cuda, cuda:N, ... "
                                "(default: cuda when available, else cpu)"),
    ("--prompt-field", "prompt_field", str, "column holding the prompt (default 'prompt')"),
]
_SYNTH = [
    ("--output", "output", str, "output file (.jsonl or .parquet); required"),
    *BACKEND_FLAGS,
    ("--dtype", "dtype", str, "hf and vllm back ends: auto | float32 | bfloat16 | float16 "
                              "(default auto)"),
    ("--label-threshold", "label_threshold", float,
     "unpaired: label = score >= THRESHOLD (default: none; each prompt's best response True, "
     "its worst False)"),
    ("--split", "split", str, "split of a saved DatasetDict folder (default: its only split)"),
    ("--limit", "limit", int, "use the first LIMIT prompts (default: all)"),
]
_ITERATE = [
    ("--output", "output", str, "run folder: OUT/round-k/... (default runs/iterate)"),
    ("--rounds", "rounds", int, "number of rounds (default 2)"),
    ("--eval-prompts", "eval_prompts", str, "held-out prompts for the per-round eval "
                                            "(default: none, eval skipped)"),
    ("--objective", "objective", str, "training objective (default sigmoid = DPO)"),
    ("--eval-n", "eval_n", int, "responses per held-out prompt (default 1)"),
    ("--eval-temperature", "eval_temperature", float, "0 = greedy (default)"),
    ("--pass-threshold", "pass_threshold", float, "a response passes at score >= this (default 1)"),
    ("--backend", "backend", str, "generation back end each round loads its policy into, for "
                                  "synth and eval: hf | vllm (default hf)"),
    ("--dtype", "dtype", str, "auto | float32 | bfloat16 | float16 (default auto)"),
]
_TRAIN_PASS = [("--lr", "lr", float), ("--max-steps", "max_steps", int),
               ("--train-batch-size", "batch_size", int), ("--epochs", "epochs", float),
               ("--grad-accum", "grad_accum", int), ("--max-length", "max_length", int)]


def _load_yaml(path: str | None) -> dict:
    if not path:
        return {}
    import yaml

    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise SystemExit(f"{path}: expected a mapping of option: value")
    return values


def _config(cls, args, flags, required):
    values = _load_yaml(args.config)
    values.update({f: getattr(args, f) for _, f, *_ in flags if getattr(args, f) is not None})
    if args.no_progress:
        values["progress"] = False
    known = {f.name for f in dataclasses.fields(cls)} - {"generator", "scorer_obj"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"unknown option(s): {', '.join(unknown)}")
    missing = [r for r in required if not values.get(r)]
    if missing:
        raise SystemExit(f"--{missing[0].replace('_', '-')} is required (or set it in --config)")
    return cls(**values)


def _cmd_synth(args) -> int:
    from .job import SynthConfig, run_synth

    cfg = _config(SynthConfig, args, _COMMON + _SYNTH, ("model", "prompts", "scorer", "output"))
    if args.keep_whitespace_variants:
        cfg.keep_whitespace_variants = True
    result = run_synth(cfg)
    c = result.counts
    print(f"prompts {c['prompts']} (resumed {c['resumed_prompts']}), generated {c['generated']}, "
          f"scored {c['scored']}, unscored {c['unscored']} (non-finite {c['non_finite']}), empty {c['empty']}, "
          f"records {c['records']}, dropped {c['dropped']}")
    print(f"wrote {result.output}; manifest {result.manifest}")
    return 0


def _cmd_iterate(args) -> int:
    from .iterate import IterateConfig, run_iterate

    cfg = _config(IterateConfig, args, _COMMON + _ITERATE, ("model", "prompts", "scorer"))
    targs = dict(cfg.train_args)
    targs.update({f: getattr(args, "train_" + f) for _, f, _ in _TRAIN_PASS
                  if getattr(args, "train_" + f) is not None})
    if args.beta is not None:
        targs.setdefault("objective_args", {})["beta"] = args.beta
    cfg.train_args = targs
    result = run_iterate(cfg)
    for info in result.rounds:
        ev = info.get("eval") or {}
        print(f"round {info['round']}: records {info['records']}, train steps "
              f"{info['train_steps']}, mean score {ev.get('mean_score')}, "
              f"pass rate {ev.get('pass_rate')}")
    print(f"final policy: {result.policy}")
    return 0


def _add_flags(p, flags):
    for flag, dest, typ, *help_ in flags:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=help_[0] if help_ else None)
    p.add_argument("--config", help="YAML file of options (field names); flags override it "
                                    "(default: none)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_synth_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help="sample N responses per prompt, score them, write preference pairs",
        description="Resumable: rerun the same command after an interruption to continue.")
    _add_flags(p, _COMMON + _SYNTH)
    p.add_argument("--keep-whitespace-variants", action="store_true",
                   help="pair responses that differ only in whitespace (dropped and counted "
                        "by default)")
    p.set_defaults(func=_cmd_synth)
    return p


def add_iterate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "iterate", help="K rounds of synth -> train -> eval from the newest policy",
        description="Resumable per round: finished rounds are skipped on rerun.")
    _add_flags(p, _COMMON + _ITERATE)
    for flag, dest, typ in _TRAIN_PASS:
        p.add_argument(flag, dest="train_" + dest, type=typ, default=None,
                       help="passed to training (default: prefalign train's)")
    p.add_argument("--beta", type=float, default=None,
                   help="objective beta (training; default: the objective's)")
    p.set_defaults(func=_cmd_iterate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefalign")
    sub = parser.add_subparsers(dest="command", required=True)
    add_synth_parser(sub)
    add_iterate_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
