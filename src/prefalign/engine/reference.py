"""Reference-model log-probs: cached once on disk, a frozen copy every step, or the policy with
its LoRA adapters disabled.

The default, ``CachedReference``, runs one batched no-grad pass over the whole data set before
training (the reference model is then freed) and stores the [examples, K] summed log-probs in a
safetensors file keyed by the reference model, the tokenized data and the engine settings, so a
second run with the same inputs loads it instead of recomputing. The tokenized data enters the
key as the token ids themselves, so any change of tokenizer, chat template, truncation or data
gives a new key. With several processes (``Shards``) each computes the examples ``rank, rank +
N, ...`` and all of them receive every result; the main process writes the one file, the same
(key and values, within float tolerance) as a single process writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from prefalign.core.files import atomic_path
from prefalign.core.identity import model_identity, stream_sha256, text_sha256, weights_identity
from prefalign.engine.forward import PackedLogProbModel, SequenceLogps
from prefalign.engine.batched import batched_logps

log = logging.getLogger(__name__)
# 2: per-layer masks (sliding windows, chunks); caches written before were computed without them
# 3: the reference model identified by its contents (was its path, sizes and mtimes)
CACHE_FORMAT = 3


def model_fingerprint(model_or_path) -> str:
    """Identify a reference model by its contents: a folder's files (so a copy elsewhere reuses
    the cache and retrained weights at the same path do not), or an in-memory model's weights."""
    if isinstance(model_or_path, (str, os.PathLike)):
        return model_identity(model_or_path)
    return weights_identity(model_or_path)


def data_fingerprint(examples: Sequence) -> str:
    """The tokenized data itself: every example's prompt and response ids."""
    return stream_sha256(json.dumps([list(ex.prompt_ids), [list(r) for r in ex.responses]])
                         for ex in examples)


def compute_all_logps(model: PackedLogProbModel, examples: Sequence, *, pad_token_id: int,
                      max_tokens: int = 8192, progress: bool = True, desc: str = "reference log-probs",
                      with_tokens: bool = False):
    """[E, K] summed log-probs (float32) of every example, in batched no-grad passes
    (`engine.batched.batched_logps`, rows no longer than each group's longest example).

    With ``with_tokens`` also returns the per-token log-probs, flat in (example, response, token)
    order, so token-level objectives (LD-DPO on the reference) can use a cached reference too.
    """
    out = batched_logps(model, examples, pad_token_id=pad_token_id, max_tokens=max_tokens,
                        tokens=with_tokens, progress=progress, desc=desc)
    if with_tokens:
        return out.logps.float(), out.token_logps.float()
    return out.logps.float()


@dataclass(frozen=True)
class Shards:
    """How the processes of a run split the reference pass: this one's ``rank``, their number
    ``world``, and ``all_gather(obj) -> [each rank's obj]`` (e.g. torch.distributed's
    ``all_gather_object``)."""

    rank: int
    world: int
    all_gather: Callable[[Any], list]


def _sharded_logps(model, examples: Sequence, shards: Shards, **options):
    """Every example's (summed, per-token) log-probs, each process computing its share."""
    mine = list(range(shards.rank, len(examples), shards.world))
    width = max(len(ex.responses) for ex in examples)  # lists of K: one process's width
    if mine:
        logps, tokens = compute_all_logps(model, [examples[i] for i in mine], with_tokens=True,
                                          **options)
        logps = torch.nn.functional.pad(logps, (0, width - logps.shape[1]))  # zeros, as one
        sizes = [sum(len(r) for r in examples[i].responses) for i in mine]
        split = list(torch.split(tokens, sizes))
    else:  # fewer examples than processes: this one only takes part in the gather
        logps, split = torch.zeros(0, width), []
    parts = shards.all_gather((mine, logps, split))
    rows: list = [None] * len(examples)
    per_example: list = [None] * len(examples)
    for indices, part_logps, part_tokens in parts:
        for i, row, toks in zip(indices, part_logps, part_tokens):
            rows[i], per_example[i] = row, toks
    return torch.stack(rows), torch.cat(per_example)


class CachedReference:
    """Reference log-probs computed once and cached on disk; looked up by example position.

    The cache holds the summed log-probs [E, K] and the per-token log-probs (flat, with the
    offset of each example), so a batch gets back a full ``SequenceLogps``.
    """

    kind = "cache"

    def __init__(self, logps: torch.Tensor, token_logps: torch.Tensor, token_offsets: torch.Tensor,
                 path: Path | None = None, reused: bool = False):
        self.logps = logps
        self.token_logps = token_logps
        self.token_offsets = token_offsets  # [E + 1]: example e's tokens are [off[e], off[e+1])
        self.path = path
        self.reused = reused

    @classmethod
    def build(cls, load_model, model_id, examples: Sequence, *, cache_dir: str | os.PathLike,
              pad_token_id: int, settings: dict, max_tokens: int = 8192,
              progress: bool = True, shards: Shards | None = None) -> "CachedReference":
        """Load ``cache_dir/<key>.safetensors`` or compute it with ``load_model()`` (called only
        on a cache miss, so a cached run never loads the reference model); ``shards``: split
        the pass over the run's processes (every one of them calls this)."""
        from safetensors.torch import load_file, save_file

        key_src = json.dumps({"format": CACHE_FORMAT, "model": model_fingerprint(model_id),
                              "data": data_fingerprint(examples), "settings": settings},
                             sort_keys=True)
        key = text_sha256(key_src)[:24]
        path = Path(cache_dir) / f"ref-logps-{key}.safetensors"
        sizes = torch.tensor([sum(len(r) for r in ex.responses) for ex in examples])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        found = path.exists()
        if shards is not None:  # the main process decides, so every process does the same
            found = shards.all_gather(found)[0]
        if found:
            log.info("reference log-probs: reusing %s", path)
            stored = load_file(path)
            return cls(stored["logps"], stored["token_logps"], offsets, path, reused=True)
        model = load_model()
        options = dict(pad_token_id=pad_token_id, max_tokens=max_tokens, progress=progress)
        if shards is None or shards.world == 1:
            logps, token_logps = compute_all_logps(model, examples, with_tokens=True, **options)
        else:
            logps, token_logps = _sharded_logps(model, examples, shards, **options)
        del model
        if shards is None or shards.rank == 0:
            with atomic_path(path) as tmp:
                save_file({"logps": logps.contiguous(), "token_logps": token_logps.contiguous()},
                          str(tmp), metadata={"key": key_src,
                                              "processes": str(shards.world if shards else 1)})
        return cls(logps, token_logps, offsets, path, reused=False)

    def __call__(self, batch, indices: Sequence[int]) -> SequenceLogps:
        tokens = torch.cat([self.token_logps[self.token_offsets[i]:self.token_offsets[i + 1]]
                            for i in indices])
        device = batch.sequence_index.device
        return SequenceLogps(logps=self.logps[list(indices)].to(device),
                             lengths=batch.response_lengths, token_logps=tokens.to(device),
                             sequence_index=batch.sequence_index)


class FrozenReference:
    """A frozen copy of the reference model run every step (needed when the reference changes
    during training, e.g. TR-DPO's periodic reference updates)."""

    kind = "model"

    def __init__(self, model: PackedLogProbModel):
        self.model = model
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, batch, indices: Sequence[int], keep_head: bool = False) -> SequenceLogps:
        return self.model(batch, keep_head=keep_head)

    def check_matches(self, policy: nn.Module) -> None:
        """Refuse a policy whose parameters (names and shapes) are not the reference's: a
        reference update needs the same model."""
        mine, theirs = dict(self.model.named_parameters()), dict(policy.named_parameters())
        differ = sorted(set(mine) ^ set(theirs)) or sorted(
            n for n in mine if mine[n].shape != theirs[n].shape)
        if differ:
            raise ValueError(f"the reference and the policy have different parameters "
                             f"({differ[:3]}); a reference update needs the same model (give "
                             "--ref-model the policy's own architecture, or no --ref-update)")

    @torch.no_grad()
    def update(self, policy: nn.Module, alpha: float) -> None:
        """TR-DPO's reference update: θ_ref ← α·θ + (1 − α)·θ_ref (α = 1: a copy of the
        policy), parameter by parameter."""
        self.check_matches(policy)
        mine, theirs = dict(self.model.named_parameters()), dict(policy.named_parameters())
        for name, p in mine.items():
            source = theirs[name].detach().to(device=p.device, dtype=p.dtype)
            if alpha == 1.0:
                p.copy_(source)
            else:
                p.mul_(1.0 - alpha).add_(source, alpha=alpha)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters()}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        if set(params) != set(tensors):
            raise ValueError("the checkpoint's reference does not match this reference model")
        for name, p in params.items():
            p.copy_(tensors[name].to(device=p.device, dtype=p.dtype))


class ReferenceSet:
    """Several fixed references (MRPO): the main one's log-probs, with each further one's
    summed log-probs beside them (``SequenceLogps.extra_logps``, [E, K, R − 1])."""

    def __init__(self, main, extras: Sequence):
        self.main, self.extras = main, list(extras)
        self.kind = main.kind
        self.reused = all(getattr(r, "reused", False) for r in (main, *self.extras))

    def __call__(self, batch, indices: Sequence[int], **options) -> SequenceLogps:
        out = self.main(batch, indices, **options)
        extra = [r(batch, indices).logps.to(out.logps) for r in self.extras]
        return dataclasses.replace(out, extra_logps=torch.stack(extra, dim=-1))


class AdapterDisabledReference:
    """The policy itself with its PEFT adapters switched off: no second copy of the weights."""

    kind = "adapter-disabled"

    def __init__(self, policy: PackedLogProbModel):
        self.policy = policy

    @torch.no_grad()
    def __call__(self, batch, indices: Sequence[int], keep_head: bool = False) -> SequenceLogps:
        peft_model = _find_peft(self.policy)
        ctx = peft_model.disable_adapter() if peft_model is not None else contextlib.nullcontext()
        was_training = self.policy.training
        self.policy.eval()
        with ctx:
            out = self.policy(batch, keep_head=keep_head)
        self.policy.train(was_training)
        return out


def _find_peft(module: nn.Module):
    for m in module.modules():
        if hasattr(m, "disable_adapter") and hasattr(m, "peft_config"):
            return m
    raise ValueError("reference 'adapter-disabled' needs a PEFT (LoRA) policy; add --lora or "
                     "choose --reference cache/model")
