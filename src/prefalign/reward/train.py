"""Train and evaluate Bradley-Terry reward models on pairwise preference data."""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from prefalign.core.files import atomic_write_json
from prefalign.data import load_records, tokenize_records
from prefalign.reward.loss import bradley_terry_loss
from prefalign.reward.model import RewardModel, load_reward_model, rewards_of


def load_pairs(data: Any, tokenizer, *, max_length: int | None = None,
               truncation: str = "keep_start") -> tuple[list, dict]:
    """Tokenized pairwise examples of ``data`` and counts of what was kept."""
    records, load_report = load_records(data)
    examples, tok_report = tokenize_records(records, tokenizer, max_length=max_length,
                                            truncation=truncation, validated=True)
    pairs = [ex for ex in examples if ex.kind == "pairwise"]
    if not pairs:
        raise ValueError(f"{data}: no pairwise records (prompt/chosen/rejected) found; a "
                         "Bradley-Terry reward model trains on pairs")
    counts = {"records": load_report.rows, "pairs": len(pairs),
              "not_pairwise": len(examples) - len(pairs),
              "dropped_by_tokenization": tok_report.n_dropped, "truncated": tok_report.truncated}
    return pairs, counts


def _pair_rewards(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [list(ex.prompt_ids) + list(ex.responses[0]) for ex in batch] + \
           [list(ex.prompt_ids) + list(ex.responses[1]) for ex in batch]
    r = rewards_of(model, seqs)
    return r[:len(batch)], r[len(batch):]


class NonFiniteError(ValueError):
    """A step's loss, gradients or updated weights are NaN or infinite; training stopped and no
    model was saved."""


def check_settings(**settings) -> dict:
    """``settings`` checked by `RewardTrainConfig`'s rules (the CLI's) before anything loads,
    and returned typed as the checks read them (``max_steps=2.0`` is 2); a setting that makes no
    sense is one line naming the flag and what it accepts."""
    from prefalign.reward.config import RewardTrainConfig

    cfg = RewardTrainConfig(model="-", data="-", output="-", **settings).validate(
        {name: RewardTrainConfig.flag_of(name) for name in settings})
    return {name: getattr(cfg, name) for name in settings}


def check_paths(model_path, data, output) -> None:
    """Refuse an --output that is, holds or lies in the --model folder (saving there overwrites
    the model), or whose metrics.jsonl / train_args.json is the --data file."""
    from prefalign.core.files import is_inside, real_path

    out = real_path(output)
    model = Path(model_path).expanduser()
    if model.exists():
        folder = real_path(model)
        if is_inside(out, folder) or is_inside(folder, out):
            how = ("is" if out == folder else "is inside" if is_inside(out, folder) else "contains")
            raise ValueError(f"--output {output} {how} --model {model_path}: saving the reward "
                             "model there would overwrite that model; choose an --output "
                             "folder apart from it")
    if isinstance(data, (str, os.PathLike)) and data:
        src = real_path(data)
        if any(is_inside(src, out / name) for name in ("metrics.jsonl", "train_args.json")):
            raise ValueError(f"--data {data} is a file rm train writes in --output {output}; "
                             "move it out of there first")


def train_reward_model(model_path: str | os.PathLike, data: Any, output: str | os.PathLike, *,
                       lr: float = 1e-5, epochs: float = 1.0, max_steps: int | None = None,
                       batch_size: int = 8, max_length: int | None = 1024,
                       use_margin: bool = True, center_rewards_coefficient: float | None = None,
                       weight_decay: float = 0.0, max_grad_norm: float | None = 1.0,
                       seed: int = 0, device: str | None = None,
                       trust_remote_code: bool = False) -> dict:
    """Train a scalar-head reward model from a causal LM (or RM) checkpoint at ``model_path``.

    Loss: `bradley_terry_loss` with the data's ``margin`` column when ``use_margin`` and
    ``center_rewards_coefficient``. Writes the model and tokenizer to ``output`` (safetensors),
    ``output/metrics.jsonl`` (one line per step: step, loss, accuracy, margin, seconds) and
    ``output/train_args.json``. Returns the final summary.
    """
    checked = check_settings(lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                             max_length=max_length, weight_decay=weight_decay,
                             max_grad_norm=max_grad_norm,
                             center_rewards_coefficient=center_rewards_coefficient)
    lr, epochs, max_steps, batch_size = (checked[k] for k in ("lr", "epochs", "max_steps", "batch_size"))
    max_length, weight_decay, max_grad_norm, center_rewards_coefficient = (
        checked[k] for k in ("max_length", "weight_decay", "max_grad_norm", "center_rewards_coefficient"))
    check_paths(model_path, data, output)
    torch.manual_seed(seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer = load_reward_model(model_path, trust_remote_code=trust_remote_code,
                                         device=device)
    pairs, counts = load_pairs(data, tokenizer, max_length=max_length)
    steps_per_epoch = math.ceil(len(pairs) / batch_size)
    total = max_steps if max_steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    order: list[int] = []
    model.train()
    start = time.time()
    last: dict = {}
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as mf:
        for step in range(1, total + 1):
            if len(order) < batch_size:
                fresh = list(range(len(pairs)))
                rng.shuffle(fresh)
                order += fresh
            batch = [pairs[i] for i in order[:batch_size]]
            del order[:batch_size]
            r_c, r_r = _pair_rewards(model, batch)
            margin = None
            if use_margin and any(ex.margin is not None for ex in batch):
                margin = torch.tensor([ex.margin or 0.0 for ex in batch], device=r_c.device)
            loss = bradley_terry_loss(r_c, r_r, margin=margin,
                                      center_rewards_coefficient=center_rewards_coefficient)
            if not math.isfinite(loss.item()):
                _stop(step, f"the loss is not finite ({loss.item()})", lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                model.parameters(), max_grad_norm if max_grad_norm else float("inf"))
            if not math.isfinite(float(grad_norm)):
                _stop(step, f"the gradients are not finite (norm {float(grad_norm)})", lr)
            opt.step()
            if _weights_not_finite(model):
                _stop(step, "the update made the weights NaN or infinite", lr)
            last = {"step": step, "loss": loss.item(),
                    "accuracy": (r_c > r_r).float().mean().item(),
                    "margin": (r_c - r_r).mean().item(), "reward/chosen": r_c.mean().item(),
                    "reward/rejected": r_r.mean().item(), "grad_norm": float(grad_norm),
                    "lr": lr, "pairs": len(batch), "seconds": time.time() - start}
            mf.write(json.dumps(last) + "\n")
            mf.flush()
    model.eval()
    if _weights_not_finite(model):  # every step checks this; a last guard before saving
        _stop(total, "the weights are NaN or infinite", lr)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    args = {"model": str(model_path), "data": str(data), "lr": lr, "epochs": epochs,
            "steps": total, "batch_size": batch_size, "max_length": max_length,
            "use_margin": use_margin, "center_rewards_coefficient": center_rewards_coefficient,
            "seed": seed, "counts": counts}
    atomic_write_json(out / "train_args.json", args)
    return {"output": str(out), "steps": total, "final": last, "counts": counts}


def _weights_not_finite(model) -> bool:
    params = [p.detach() for p in model.parameters()]
    if not params:
        return False
    peaks = torch._foreach_norm(params, float("inf"))  # NaN propagates through the max
    return bool((~torch.isfinite(torch.stack([n.float() for n in peaks]))).any())


def _stop(step: int, what: str, lr: float) -> None:
    raise NonFiniteError(f"step {step}: {what}; training stopped, this step was not logged and "
                         f"no reward model was saved. Check the learning rate (--lr {lr:g}).")


@torch.no_grad()
def evaluate_reward_model(path_or_model: Any, data: Any, *, batch_size: int = 16,
                          max_length: int | None = 1024) -> dict:
    """Pairwise accuracy (r_c > r_r; ties counted as half and reported), reward margins, and
    the calibration of σ(r_c − r_r) (`prefalign.reward.calibration`: ECE, reliability bins,
    accuracy by margin bucket)."""
    from prefalign.reward.calibration import calibration

    rm = path_or_model if isinstance(path_or_model, RewardModel) else \
        RewardModel.from_pretrained(path_or_model)
    pairs, counts = load_pairs(data, rm.tokenizer, max_length=max_length)
    r = rm.score_examples(pairs, batch_size=batch_size).double()
    diff = r[:, 0] - r[:, 1]
    ties = (diff == 0).double().mean().item()
    return {"accuracy": ((diff > 0).double().mean().item() + 0.5 * ties), "tie_rate": ties,
            "margin": diff.mean().item(), "reward/chosen": r[:, 0].mean().item(),
            "reward/rejected": r[:, 1].mean().item(), **counts,
            "calibration": calibration(diff.tolist())}
