"""`prefalign rm train|eval`: thin shells over `train_reward_model` and
`evaluate_reward_model`. The lead's cli.py calls ``add_rm_parser(sub)``."""

from __future__ import annotations

import argparse
import json


def _cmd_train(args: argparse.Namespace) -> int:
    from prefalign.reward.train import train_reward_model

    summary = train_reward_model(
        args.model, args.data, args.output, lr=args.lr, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length,
        use_margin=not args.no_margin, center_rewards_coefficient=args.center_rewards_coefficient,
        seed=args.seed, device=args.device, trust_remote_code=args.trust_remote_code)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from prefalign.reward.train import evaluate_reward_model

    result = evaluate_reward_model(args.model, args.data, batch_size=args.batch_size,
                                   max_length=args.max_length)
    print(json.dumps(result, indent=2))
    if args.output:
        from prefalign.data import atomic_write

        with atomic_write(args.output) as f:
            json.dump(result, f, indent=2)
    return 0


def add_rm_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("rm", help="train or evaluate a Bradley-Terry reward model")
    sub = p.add_subparsers(dest="rm_command", required=True)
    t = sub.add_parser("train", help="train a scalar-head reward model on pairwise data")
    t.add_argument("--model", required=True, help="causal LM (or reward model) folder")
    t.add_argument("--data", required=True, help="pairwise preference data")
    t.add_argument("--output", required=True, help="folder for the trained reward model")
    t.add_argument("--lr", type=float, default=1e-5, help="learning rate (default %(default)s)")
    t.add_argument("--epochs", type=float, default=1.0,
                   help="passes over the data (default %(default)s)")
    t.add_argument("--max-steps", type=int, default=None,
                   help="optimizer steps, overriding --epochs (default: from --epochs)")
    t.add_argument("--batch-size", type=int, default=8,
                   help="pairs per step (default %(default)s)")
    t.add_argument("--max-length", type=int, default=1024,
                   help="tokens per prompt + response (default %(default)s)")
    t.add_argument("--no-margin", action="store_true", help="ignore the data's margin column")
    t.add_argument("--center-rewards-coefficient", type=float, default=None,
                   help="reward centering c·mean((r_c+r_r)^2), e.g. 0.01 (default: off)")
    t.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    t.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)")
    t.add_argument("--trust-remote-code", action="store_true",
                   help="run the model folder's own code (off by default)")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("eval", help="pairwise accuracy of a reward model")
    e.add_argument("--model", required=True, help="trained reward model folder")
    e.add_argument("--data", required=True, help="pairwise preference data")
    e.add_argument("--batch-size", type=int, default=16,
                   help="pairs per forward pass (default %(default)s)")
    e.add_argument("--max-length", type=int, default=1024,
                   help="tokens per prompt + response (default %(default)s)")
    e.add_argument("--output", default=None,
                   help="write the result JSON here (default: printed only)")
    e.set_defaults(func=_cmd_eval)
    return p
