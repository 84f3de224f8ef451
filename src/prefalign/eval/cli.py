"""`prefalign eval` and `prefalign report`: thin shells over `evaluate_policy` and
`build_report`. The lead's cli.py calls ``add_eval_parser(sub)`` and ``add_report_parser(sub)``;
each sets ``func`` to a command returning an exit code."""

from __future__ import annotations

import argparse
import json

from prefalign.generation.options import BACKEND_FLAGS


def _cmd_eval(args: argparse.Namespace) -> int:
    from prefalign.eval.policy import evaluate_policy

    result = evaluate_policy(args.model, args.data, ref_path=args.ref_model, prompts=args.prompts,
                             beta=args.beta, output=args.output, max_length=args.max_length,
                             num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
                             temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                             sample_batch_size=args.sample_batch_size,
                             judge=args.judge, dtype=args.dtype, device=args.device,
                             trust_remote_code=args.trust_remote_code,
                             backend=args.backend or "hf", base_url=args.base_url,
                             served_model=args.served_model,
                             **{f: getattr(args, f) for f in ("concurrency", "timeout",
                                                               "max_retries")
                                if getattr(args, f) is not None})
    print(json.dumps(result["metrics"], indent=2))
    for w in result["warnings"]:
        print(f"warning: {w}")
    print(f"wrote {args.output}/eval.json")
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="diagnostics of a policy on preference data and "
                              "prompts (ranking accuracy, implicit rewards, KL, lengths)")
    p.add_argument("--model", required=True, help="policy folder (Hugging Face format)")
    p.add_argument("--ref-model", default=None, help="reference model; enables rewards, "
                   "displacement, idealized ranking accuracy and KL (default: none)")
    p.add_argument("--data", default=None, help="pairwise preference data file (default: none; "
                   "--data, --prompts or both are required)")
    p.add_argument("--prompts", default=None, help="prompts to sample from (.jsonl/.json with a "
                   "'prompt' field, or .txt one per line; default: none)")
    p.add_argument("--output", required=True, help="folder for eval.json")
    p.add_argument("--beta", type=float, default=0.1,
                   help="β of the implicit reward (default %(default)s)")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per --data example, longer ones cut (default: no limit)")
    p.add_argument("--num-samples", type=int, default=1,
                   help="samples per prompt (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=64,
                   help="tokens per sampled response at most (default %(default)s)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature, 0 = greedy (default %(default)s)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="nucleus sampling, in (0, 1]; 1 = off (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="base seed; sample j of prompt i uses "
                   "hash(seed, i, j) (default %(default)s)")
    p.add_argument("--sample-batch-size", type=int, default=16,
                   help="hf back end: rows (prompt x sample) per generate call "
                        "(default %(default)s)")
    p.add_argument("--judge", default=None, help="judge model, checked for preference leakage "
                   "(default: none)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="weight dtype: float32 | bfloat16 | float16 (default %(default)s)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model folder's own code (off by default)")
    for flag, dest, typ, help_ in BACKEND_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None,
                       help=help_ + ("; samples the --prompts" if flag == "--backend" else ""))
    p.add_argument("--served-model", default=None, help="openai back end: the name the server "
                   "serves the policy under (default: the --model value)")
    p.set_defaults(func=_cmd_eval)
    return p


def _cmd_report(args: argparse.Namespace) -> int:
    from prefalign.eval.report import build_report

    summary = build_report(args.run_dir, eval_json=args.eval_json, output=args.output)
    out = args.output or f"{args.run_dir}/report"
    print(f"wrote {out}/report.md, report.html, report.json and {len(summary['plots'])} plots")
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="plots and tables of a training run")
    p.add_argument("run_dir", help="the run folder (with metrics.jsonl)")
    p.add_argument("--eval-json", default=None, help="an eval.json from `prefalign eval` "
                   "(default: RUN/eval.json or RUN/eval/eval.json if present)")
    p.add_argument("--output", default=None, help="report folder (default RUN/report)")
    p.set_defaults(func=_cmd_report)
    return p
