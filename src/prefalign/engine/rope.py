"""Position-dependent RoPE in packed batches: every sequence in the regime its own length selects.

transformers' dynamic RoPE update (``dynamic_rope_update``) picks a model's rotary frequencies
once per forward from ``max(position_ids) + 1`` over the whole tensor: Phi-3's ``longrope``
switches from its short to its long factors past ``original_max_position_embeddings``, and
``dynamic`` NTK rescales its base to that length past ``max_position_embeddings``. A packed
forward holds many sequences (and padding), so the choice of one would be imposed on all. Alone,
a sequence of length L (prompt + response) is computed in the regime L selects; this module makes
the packed forward do exactly that:

- `RopeRegimes.key(L)` names the regime of a sequence of length L (the same key: the same
  frequencies). The layout (``layout.pack(split=...)``) gives each example's responses of one
  regime their own copy of the prompt, since a prompt computed under two regimes has two sets of
  hidden states.
- `RopeRegimes.per_sequence(view_lengths)` (a context manager) makes every rotary module compute
  each token's cos/sin with the frequencies of its own sequence's regime (padding in the short
  regime), through the module's own undecorated forward, so padding and batch-mates never move a
  sequence into another regime; the module's state (its cached frequencies) is left as it was.

``dynamic`` is taken as a fresh model computes a sequence alone (transformers itself keeps the
frequencies of the longest sequence seen until a shorter one resets them: history, not a
property of the sequence); `reset` returns a model's rotary modules to that fresh state, so the
plain per-sequence reference is history-free too. Rotary types transformers computes from the
config alone (default, linear, llama3, yarn, proportional) need nothing; a type not known here is
refused before any work.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from prefalign.engine.attention import UnsupportedModelError

STATIC_TYPES = frozenset({"default", "linear", "llama3", "yarn", "proportional"})
LENGTH_TYPES = frozenset({"longrope", "dynamic"})


@dataclass(frozen=True)
class _Rotary:
    """One rotary table of a module (``layer_type`` for modules that keep one per layer type)."""

    module: nn.Module
    layer_type: str | None
    rope_type: str

    @property
    def prefix(self) -> str:
        return f"{self.layer_type}_" if self.layer_type else ""

    def threshold(self) -> int:
        """Longest length computed with the original frequencies."""
        if self.rope_type == "longrope":
            params = self.module.config.rope_parameters
            params = params[self.layer_type] if self.layer_type else params
            return int(params["original_max_position_embeddings"])
        return int(self.module.original_max_seq_len)

    def key(self, length: int):
        if length <= self.threshold():
            return 0
        return 1 if self.rope_type == "longrope" else int(length)

    def tables(self, key, device) -> tuple[torch.Tensor, float]:
        """(inverse frequencies, attention scaling) of regime ``key``, as transformers' update
        would set them for a fresh module."""
        original = getattr(self.module, f"{self.prefix}original_inv_freq").to(device)
        scaling = getattr(self.module, f"{self.prefix}attention_scaling")
        if key == 0:
            return original, scaling
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        kw = {"layer_type": self.layer_type} if self.layer_type else {}
        if self.rope_type == "longrope":
            inv_freq, _ = ROPE_INIT_FUNCTIONS["longrope"](self.module.config, device,
                                                          seq_len=self.threshold() + 1, **kw)
            return inv_freq.to(device), scaling  # longrope keeps its attention factor
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[self.rope_type](self.module.config, device,
                                                                seq_len=key, **kw)
        return inv_freq.to(device), scaling


def _rope_type(name: str) -> str:
    return "dynamic" if "dynamic" in name else name  # transformers' own test ("dynamic" in it)


def _rotaries(model: nn.Module) -> list[_Rotary]:
    out = []
    for module in model.modules():
        types = getattr(module, "rope_type", None)
        # transformers' update wraps the forward of the rotary modules it may change
        if not isinstance(types, (str, dict)) or not hasattr(type(module).forward, "__wrapped__"):
            continue
        items = types.items() if isinstance(types, dict) else [(None, types)]
        for layer_type, rope_type in items:
            kind = _rope_type(str(rope_type))
            if kind not in STATIC_TYPES | LENGTH_TYPES:
                raise UnsupportedModelError(
                    f"RoPE type {rope_type!r} ({type(module).__name__}) is not one prefalign "
                    "knows to be exact in packed batches (known: "
                    f"{', '.join(sorted(STATIC_TYPES | LENGTH_TYPES))})")
            if kind in LENGTH_TYPES:
                out.append(_Rotary(module, layer_type, kind))
    return out


class RopeRegimes:
    """The length-dependent rotary tables of a model (none for most models)."""

    def __init__(self, model: nn.Module):
        self.rotaries = _rotaries(model)
        self._active: torch.Tensor | None = None

    def __bool__(self) -> bool:
        return bool(self.rotaries)

    def key(self, length: int) -> tuple:
        """The regime of a sequence of ``length`` tokens (equal keys: equal frequencies)."""
        return tuple(r.key(length) for r in self.rotaries)

    def split(self, example) -> list[list[int]]:
        """``example``'s responses grouped by regime (a group shares one copy of the prompt)."""
        groups: dict[tuple, list[int]] = {}
        p = len(example.prompt_ids)
        for k, response in enumerate(example.responses):
            groups.setdefault(self.key(p + len(response)), []).append(k)
        return list(groups.values())

    def check(self, batch) -> None:
        """Refuse a batch that shares a prompt between responses of different regimes (one
        not laid out with `split`): that prompt cannot be computed right for both."""
        if batch.view_lengths is None:
            raise ValueError("this model's RoPE follows each sequence's length, and the batch "
                             "carries no view lengths; lay it out with PackedLogProbModel.pack")
        codes = torch.zeros_like(batch.view_lengths)
        ids: dict[tuple, int] = {}
        for n in torch.unique(batch.view_lengths).tolist():
            codes[batch.view_lengths == n] = ids.setdefault(self.key(int(n)), len(ids))
        real = batch.segment_ids >= 0
        rows = torch.arange(real.shape[0], device=real.device)[:, None]
        unit = (rows * (int(batch.segment_ids.max()) + 1) + batch.segment_ids)[real]
        code = codes[real]
        size = int(unit.max()) + 1 if unit.numel() else 0
        lo = torch.full((size,), len(ids), dtype=code.dtype, device=code.device)
        hi = torch.full((size,), -1, dtype=code.dtype, device=code.device)
        lo = lo.scatter_reduce(0, unit, code, "amin")
        hi = hi.scatter_reduce(0, unit, code, "amax")
        if bool(((hi >= 0) & (lo != hi)).any()):
            raise ValueError("this batch shares a prompt between responses of different RoPE "
                             "regimes (their lengths fall on both sides of the model's "
                             "threshold); lay it out with PackedLogProbModel.pack")

    @contextlib.contextmanager
    def per_sequence(self, view_lengths: torch.Tensor):
        """While it lasts, the rotary modules compute each token's cos/sin in the regime of
        ``view_lengths`` (per token, the length of its sequence; 0 for padding), which must have
        the shape of the position ids the model is given."""
        modules = {id(r.module): r.module for r in self.rotaries}
        by_module: dict[int, list[_Rotary]] = {}
        for r in self.rotaries:
            by_module.setdefault(id(r.module), []).append(r)
        saved = {}
        for key, module in modules.items():
            saved[key] = module.__dict__.get("forward")
            module.forward = _per_token_forward(module, by_module[key], view_lengths)
        try:
            yield
        finally:
            for key, module in modules.items():
                if saved[key] is None:
                    del module.forward
                else:
                    module.forward = saved[key]


def _per_token_forward(module: nn.Module, rotaries: list[_Rotary], view_lengths: torch.Tensor):
    plain = type(module).forward.__wrapped__  # the forward without transformers' update
    table = {r.layer_type: r for r in rotaries}

    def forward(x, position_ids, *args, **kwargs):
        layer_type = kwargs.get("layer_type", args[0] if args else None)
        rotary = table.get(layer_type)
        if rotary is None:  # a layer type with a static table
            return plain(module, x, position_ids, *args, **kwargs)
        lengths = view_lengths.to(position_ids.device)
        if lengths.shape != position_ids.shape:
            raise RuntimeError(f"view lengths {tuple(lengths.shape)} do not match the position "
                               f"ids {tuple(position_ids.shape)}")
        keys = {rotary.key(int(n)) for n in torch.unique(lengths).tolist()}
        prefix = rotary.prefix
        inv_name, scale_name = f"{prefix}inv_freq", f"{prefix}attention_scaling"
        kept_inv, kept_scale = getattr(module, inv_name), getattr(module, scale_name)
        cos = sin = None
        try:
            for key in sorted(keys, key=str):
                inv_freq, scaling = rotary.tables(key, x.device)
                setattr(module, inv_name, inv_freq)
                setattr(module, scale_name, scaling)
                c, s = plain(module, x, position_ids, *args, **kwargs)
                if cos is None:
                    cos, sin = c, s
                    continue
                here = _in_regime(rotary, key, lengths)[..., None]
                cos, sin = torch.where(here, c, cos), torch.where(here, s, sin)
        finally:
            setattr(module, inv_name, kept_inv)
            setattr(module, scale_name, kept_scale)
        return cos, sin

    return forward


def _in_regime(rotary: _Rotary, key, lengths: torch.Tensor) -> torch.Tensor:
    if key == 0:
        return lengths <= rotary.threshold()
    if rotary.rope_type == "longrope":
        return lengths > rotary.threshold()
    return lengths == key


def reset(model: nn.Module) -> None:
    """Return the dynamic rotary modules of ``model`` to a fresh model's state (transformers keeps
    the frequencies of the longest sequence it has seen)."""
    for r in _rotaries(model):
        if r.rope_type != "dynamic":
            continue
        m, prefix = r.module, r.prefix
        setattr(m, f"{prefix}inv_freq", getattr(m, f"{prefix}original_inv_freq").clone())
        setattr(m, f"{prefix}max_seq_len_cached", m.original_max_seq_len)
