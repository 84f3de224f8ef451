"""Sequence log-probs of a causal LM over a packed, prefix-shared batch.

``PackedLogProbModel`` wraps a Hugging Face causal LM (optionally PEFT-wrapped). Its forward runs
the decoder body once over the packed rows with the layout's attention mask and position ids,
gathers the hidden states that predict response tokens, and applies the LM head to those only,
in chunks. Wrapping it in one ``nn.Module`` lets DDP/FSDP (through ``accelerate``) see one
forward, so gradient synchronisation works as for any model.

``plain_sequence_logps`` is the reference implementation the fast path is tested against: one
ordinary forward per prompt + response, full logits, ``log_softmax``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Sequence

import torch
from torch import nn

from prefalign.engine.layout import PackedBatch, pack, to_stream
from prefalign.engine.logprobs import (DEFAULT_CHUNK_TOKENS, head_logits, token_kl,
                                       token_logprobs, token_statistics)
from prefalign.engine import moe, rope, varlen
from prefalign.engine.attention import (AttentionPlan, UnsupportedModelError, attention_plan,
                                        check_kernel, check_varlen, decoder_body, unwrap)
from prefalign.engine.masks import dense_mask, flex_block_mask


@dataclass
class SequenceLogps:
    """Log-probs of every (example, response) of a batch.

    ``logps`` and ``lengths`` are [E, K]: summed log-probs and token counts of response k of
    example e (0 where an example has fewer than K responses). ``token_logps`` is flat over all
    response tokens with ``sequence_index`` = e * K + k; ``stats`` holds optional per-token
    statistics aligned with it.
    """

    logps: torch.Tensor
    lengths: torch.Tensor
    token_logps: torch.Tensor
    sequence_index: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    # with ``kl_reference``: KL(π_ref ‖ π) per response token and its sum per response, [E, K]
    token_kl: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    # with ``keep_head``: what the LM head saw, for another model's per-token KL against this one
    head: "HeadInputs | None" = None
    # with ``router_aux_loss``: the MoE router's load-balancing loss over the batch's real tokens
    aux_loss: torch.Tensor | None = None
    # a reference set's (MRPO): the further references' summed log-probs, [E, K, R − 1]
    extra_logps: torch.Tensor | None = None
    # with a value head (DRO): V(x) of each example's prompt, [E]
    values: torch.Tensor | None = None

    def padded(self, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token ``values`` (default: token log-probs) as [E, K, T] plus a bool mask."""
        values = self.token_logps if values is None else values
        e, k = self.lengths.shape
        width = int(self.lengths.max()) if self.lengths.numel() else 0
        counts = self.lengths.reshape(-1)
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(values.shape[0], device=values.device) - starts[self.sequence_index]
        out = values.new_zeros(e * k, width)
        mask = torch.zeros(e * k, width, dtype=torch.bool, device=values.device)
        out = out.index_put((self.sequence_index, pos), values)
        mask[self.sequence_index, pos] = True
        return out.view(e, k, width), mask.view(e, k, width)


@dataclass
class HeadInputs:
    """The LM head's inputs at the response positions of a batch: enough to recompute that
    model's next-token distributions there, chunk by chunk."""

    hidden: torch.Tensor  # [N, H], row i predicts response token i of the batch
    weight: torch.Tensor
    bias: torch.Tensor | None
    scale: float
    softcap: float | None
    aux_loss: torch.Tensor | None = None  # MoE router load-balancing loss, when asked for


def head_transform(config) -> tuple[float, float | None]:
    """(logit scale, final softcap) that a model family applies after its LM head."""
    scale = 1.0
    if getattr(config, "logit_scale", None):  # Cohere multiplies logits
        scale = float(config.logit_scale)
    if getattr(config, "logits_scaling", None):  # Granite divides them
        scale = 1.0 / float(config.logits_scaling)
    softcap = getattr(config, "final_logit_softcapping", None) or None  # Gemma 2/3
    return scale, softcap


class PackedLogProbModel(nn.Module):
    """Computes response log-probs for packed, prefix-shared batches with a chunked LM head."""

    def __init__(self, model: nn.Module, *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                 router_aux_loss: bool = False, value_head: bool = False):
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens
        self.router_aux_loss = router_aux_loss
        if router_aux_loss:
            moe.loss_function(unwrap(model))  # refuse before any work
        # DRO's value baseline V(x): a linear head on the hidden state that predicts the
        # response's first token (the prompt's last), starting at V = 0. It trains with the
        # policy but is not part of the saved model (`.model` is)
        self.value_head = None
        if value_head:
            width = unwrap(model).get_output_embeddings().weight.shape[1]
            self.value_head = nn.Linear(width, 1, dtype=torch.float32)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    @property
    def config(self):
        return unwrap(self.model).config

    @property
    def plan(self) -> AttentionPlan:
        """Which mask each layer needs (worked out once; refuses models it cannot serve)."""
        if getattr(self, "_plan", None) is None:
            self._plan = attention_plan(self.model)
            if check_kernel(self.model) == varlen.NAME:
                check_varlen(self.model, self._plan)
        return self._plan

    def pack(self, examples: Sequence, *, pad_token_id: int = 0,
             row_capacity: int | None = None) -> PackedBatch:
        """``examples`` laid out the way this model's attention kernel wants: FlexAttention one
        bucketed row (a bounded number of compiled shapes per epoch: `layout.bucket_width`),
        the other kernels rows of at most ``row_capacity`` tokens."""
        return pack(examples, pad_token_id=pad_token_id, row_capacity=row_capacity,
                    bucketed=check_kernel(self.model) == "flex_attention",
                    split=self.regimes.split if self.regimes else None)

    @property
    def regimes(self) -> rope.RopeRegimes:
        """The model's length-dependent RoPE tables (empty for most models; refuses a RoPE type
        it does not know)."""
        if getattr(self, "_regimes", None) is None:
            self._regimes = rope.RopeRegimes(unwrap(self.model))
        return self._regimes

    def _attention_mask(self, batch: PackedBatch):
        """The layout's mask for every kind of layer the model has: a dict from layer type to
        mask for models that take one, else the one mask all layers share."""
        impl = check_kernel(self.model)
        self.plan.check_row_length(batch.input_ids.shape[1])
        if impl == "flex_attention":
            build = lambda kind: flex_block_mask(  # noqa: E731
                batch.segment_ids, batch.branch_ids, batch.position_ids, kind)
        else:
            dtype = next(self.model.parameters()).dtype
            dtype = dtype if dtype.is_floating_point else torch.float32
            build = lambda kind: dense_mask(  # noqa: E731
                batch.segment_ids, batch.branch_ids, batch.position_ids, kind,
                attn_implementation=impl, dtype=dtype)
        by_kind = {kind: build(kind) for kind in set(self.plan.kinds.values())}
        masks = {layer_type: by_kind[kind] for layer_type, kind in self.plan.kinds.items()}
        return masks if self.plan.mapping else next(iter(masks.values()))

    @torch.no_grad()
    def verify_head(self) -> None:
        """Once per model: on a tiny example, the engine's body + LM head give the logits of the
        model's own forward. Catches a family whose head applies a transform the engine does
        not know (a logit scale, a soft-cap, a multiplier), before it trains on wrong log-probs."""
        self._head_verified = True
        vocab = int(self.config.vocab_size)
        ids = [min(3 + i, vocab - 1) for i in range(4)]
        device = next(self.model.parameters()).device
        example = SimpleNamespace(prompt_ids=ids[:2], responses=[ids[2:]])
        if self.model.training and any(isinstance(m, nn.Dropout) and m.p > 0
                                       for m in self.model.modules()):
            return  # dropout makes any two forwards differ; training switches it off by default
        if getattr(unwrap(self.model), "is_quantized", False):
            return  # a no-grad forward makes bitsandbytes repack 4-bit weights for CPU inference,
            # after which its backward is wrong; the head of a quantized model is not quantized
        h = self.head_inputs(self.pack([example]).to(device))
        ours = head_logits(h.hidden, h.weight, h.bias, logit_scale=h.scale, softcap=h.softcap)
        theirs = self.model(input_ids=torch.tensor([ids], device=device),
                            use_cache=False).logits[0, 1:-1].float()
        fp32 = h.hidden.dtype == torch.float32 and not torch.is_autocast_enabled(device.type)
        tol = 1e-4 if fp32 else 3e-2
        gap = float((ours - theirs).abs().max())
        if gap > tol * (1.0 + float(theirs.abs().max())):
            raise UnsupportedModelError(
                f"{self.config.model_type}: the engine's LM head does not reproduce the model's "
                f"own logits (max difference {gap:.3g}): this family transforms its logits in a "
                "way prefalign does not know, so its log-probs would be wrong")
        if check_kernel(self.model) == varlen.NAME:
            self._verify_varlen(ids, device, tol)

    def _verify_varlen(self, ids: list[int], device, tol: float) -> None:
        """Two examples of two responses in one stream give each sequence's own log-probs: a
        family whose attention ignores the plan (computing its own attention, or dropping the
        keyword arguments) would attend across them, so it is refused here, before any work."""
        examples = [SimpleNamespace(prompt_ids=prompt, responses=responses) for prompt, responses in (
            ([ids[0], ids[1], ids[2]], [[ids[3], ids[1]], [ids[2]]]),
            ([ids[3]], [[ids[0], ids[2], ids[1]], [ids[1], ids[0]]]))]
        ours = self.forward(self.pack(examples).to(device)).logps.float()
        theirs = plain_sequence_logps(self.model, examples).float()
        gap = float((ours - theirs).abs().max())
        if not gap <= tol * (1.0 + float(theirs.abs().max())):
            raise varlen.refusal(self.config.model_type, "the packed stream's log-probs differ "
                                 f"from one forward per sequence by {gap:.3g}")

    def head_inputs(self, batch: PackedBatch) -> HeadInputs:
        """Run the decoder body and gather the hidden states that predict response tokens."""
        if not getattr(self, "_head_verified", False):
            self.verify_head()
        base = unwrap(self.model)
        body, head = decoder_body(base), base.get_output_embeddings()
        extra = {"output_router_logits": True} if self.router_aux_loss else {}
        kwargs = {"use_cache": False, **extra}
        if check_kernel(self.model) == varlen.NAME:
            # padding-free: one token stream, attention split by the index plan
            batch = to_stream(batch)
            self.plan.check_row_length(batch.input_ids.shape[1])
            kwargs[varlen.KWARG] = varlen.VarlenPlan.from_batch(batch, self.plan)
        else:
            kwargs["attention_mask"] = self._attention_mask(batch)  # checks the row length
        with contextlib.ExitStack() as stack:
            if self.regimes:  # each sequence in the RoPE regime its own length selects
                self.regimes.check(batch)
                stack.enter_context(self.regimes.per_sequence(batch.view_lengths))
            if varlen.KWARG in kwargs:
                stack.enter_context(varlen.active())
            out = body(input_ids=batch.input_ids, position_ids=batch.position_ids, **kwargs)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.source_index)
        scale, softcap = head_transform(base.config)
        aux = None
        if self.router_aux_loss:
            aux = moe.router_aux_loss(base, out.router_logits, batch.segment_ids >= 0)
        return HeadInputs(hidden, head.weight, getattr(head, "bias", None), scale, softcap, aux)

    def forward(self, batch: PackedBatch, stats: Sequence[str] = (), topk: int = 10,
                kl_reference: HeadInputs | None = None, keep_head: bool = False) -> SequenceLogps:
        """Response log-probs of ``batch``. ``kl_reference`` (the reference model's
        `head_inputs` on the same batch) adds the per-token KL(π_ref ‖ π) that TDPO needs;
        ``keep_head`` returns this model's head inputs (detached) for that purpose."""
        h = self.head_inputs(batch)
        token_logps = token_logprobs(h.hidden, h.weight, batch.target_ids, bias=h.bias,
                                     chunk_tokens=self.chunk_tokens, logit_scale=h.scale,
                                     softcap=h.softcap)
        extra = {}
        if stats:
            extra = token_statistics(h.hidden.detach(), h.weight.detach(), set(stats),
                                     bias=None if h.bias is None else h.bias.detach(),
                                     chunk_tokens=self.chunk_tokens, logit_scale=h.scale,
                                     softcap=h.softcap, topk=topk)
        e, k = batch.num_examples, batch.num_responses
        sums = token_logps.new_zeros(e * k).index_add(0, batch.sequence_index, token_logps)
        result = SequenceLogps(logps=sums.view(e, k), lengths=batch.response_lengths,
                               token_logps=token_logps, sequence_index=batch.sequence_index,
                               stats=extra, aux_loss=h.aux_loss)
        if kl_reference is not None:
            r = kl_reference
            result.token_kl = token_kl(h.hidden, h.weight, r.hidden, r.weight, bias=h.bias,
                                       ref_bias=r.bias, chunk_tokens=self.chunk_tokens,
                                       logit_scale=h.scale, softcap=h.softcap,
                                       ref_logit_scale=r.scale, ref_softcap=r.softcap)
            result.kl = result.token_kl.new_zeros(e * k).index_add(
                0, batch.sequence_index, result.token_kl).view(e, k)
        if self.value_head is not None:
            result.values = self.prompt_values(h.hidden, batch)
        if keep_head:
            result.head = HeadInputs(h.hidden.detach(), h.weight.detach(),
                                     None if h.bias is None else h.bias.detach(), h.scale,
                                     h.softcap)
        return result

    def prompt_values(self, hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """V(x) [E] from the hidden state predicting each example's first response token: the
        prompt's last, shared by its responses. Its gradient stops at the head, so fitting the
        value never moves the policy."""
        counts = batch.response_lengths.reshape(-1)
        starts = (torch.cumsum(counts, 0) - counts).view(batch.num_examples, -1)[:, 0]
        if bool((batch.response_lengths[:, 0] <= 0).any()):
            raise ValueError("a value head needs every example's first response to have a token")
        first = hidden.index_select(0, starts.to(hidden.device)).detach()
        return self.value_head(first.to(self.value_head.weight.dtype)).squeeze(-1)


def _per_response(examples: Sequence, device, value) -> torch.Tensor:
    """[E, K]: ``value(full_ids [1, L], prompt_len, response)`` for every response of every
    example (0 where an example has fewer than K responses)."""
    num_responses = max(len(ex.responses) for ex in examples)
    rows = []
    for ex in examples:
        row = [value(torch.tensor([list(ex.prompt_ids) + list(resp)], device=device),
                     len(ex.prompt_ids), resp) for resp in ex.responses]
        row += [torch.zeros((), device=device)] * (num_responses - len(row))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def plain_sequence_logps(model: nn.Module, examples: Sequence) -> torch.Tensor:
    """[E, K] summed response log-probs, one ordinary forward per prompt + response.

    The slow, obviously-correct path: full logits over every position, ``log_softmax``, gather;
    each sequence alone, as a fresh model sees it (dynamic RoPE keeps no history: `rope.reset`).
    """
    def summed_logp(ids, p, resp):
        rope.reset(model)  # dynamic RoPE as a fresh model computes this sequence alone
        logits = model(input_ids=ids, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[0, p - 1:-1], dim=-1)
        return logp.gather(1, ids[0, p:, None]).sum()

    return _per_response(examples, next(model.parameters()).device, summed_logp)


def plain_sequence_kl(policy: nn.Module, reference: nn.Module, examples: Sequence) -> torch.Tensor:
    """[E, K] Σ_t KL(π_ref ‖ π) per response from ordinary forwards of both models (full
    logits); the slow path the packed ``kl_reference`` forward is tested against."""
    from prefalign.objectives.token_level import sequence_kl

    def summed_kl(ids, p, resp):
        rope.reset(policy), rope.reset(reference)
        pol = policy(input_ids=ids, use_cache=False).logits[:, p - 1:-1].float()
        ref = reference(input_ids=ids, use_cache=False).logits[:, p - 1:-1].float()
        mask = torch.ones(1, len(resp), dtype=torch.bool, device=ids.device)
        return sequence_kl(pol, ref, mask)[0]

    return _per_response(examples, next(policy.parameters()).device, summed_kl)

