"""Prefix-shared, packed layout of a batch of examples.

One example = one prompt and K responses (a pair: K=2; unpaired/SFT: K=1; a ranked list: K).
It becomes one run of tokens ``[prompt | response_0 | response_1 | ...]``: the prompt is computed
once, each response attends to the prompt and to itself only, and each response's positions
restart right after the prompt, so every response sees exactly what a separate
``prompt + response`` forward would show it. Several examples are packed into one row
(block-diagonal attention), so padding is near zero.

Each token gets a *segment* (which example of the row; -1 for padding) and a *branch*
(0 = prompt, r + 1 = response r). Attention is allowed from query q to key k iff
``segment[q] == segment[k] and k <= q and branch[k] in (0, branch[q])``.

Response token j of response r is predicted from the hidden state one place before it in its own
view of the sequence: the last prompt token for j = 0, response token j - 1 otherwise. The layout
records those *source positions* so the LM head runs on them only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass
class PackedBatch:
    """Tensors for one forward pass over a packed, prefix-shared batch.

    Row-level tensors are [rows, length]. Token-level response tensors are flat over every
    response token of the batch, ordered example by example, response by response.
    """

    input_ids: torch.Tensor  # [R, L] long
    position_ids: torch.Tensor  # [R, L] long
    segment_ids: torch.Tensor  # [R, L] long, -1 = padding
    branch_ids: torch.Tensor  # [R, L] long, 0 = prompt, r + 1 = response r
    source_index: torch.Tensor  # [N] long: flat index (row * L + col) of each predicting state
    target_ids: torch.Tensor  # [N] long: the response token predicted there
    sequence_index: torch.Tensor  # [N] long: which (example, response) sequence the token is in
    num_examples: int
    num_responses: int  # K: responses per example (shorter lists are padded, see response_mask)
    response_lengths: torch.Tensor  # [E, K] long (0 where an example has fewer responses)
    prompt_lengths: torch.Tensor  # [E] long
    # The examples' metadata, carried to the loss with the batch (the forward ignores them):
    # None when no example has it; NaN marks a missing value.
    margins: torch.Tensor | None = None  # [E] float64: a pair's margin
    strengths: torch.Tensor | None = None  # [E] float64: a pair's p(chosen ≻ rejected)
    labels: torch.Tensor | None = None  # [E] bool: an unpaired example's label (None = True)
    scores: torch.Tensor | None = None  # [E, K] float64: the responses' scores
    # [R, L] long: per token, the length of the sequence it is part of (its prompt copy: the
    # longest response's; 0 = padding), for RoPE whose frequencies follow that length (rope.py)
    view_lengths: torch.Tensor | None = None

    @property
    def response_mask(self) -> torch.Tensor:
        """[E, K] bool: which (example, response) slots hold a real response."""
        return self.response_lengths > 0

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) tokens in the batch."""
        return int((self.segment_ids >= 0).sum())

    def to(self, device) -> "PackedBatch":
        moved = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=True)
        return PackedBatch(**moved)


def plan_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Assign items to rows of at most ``capacity`` tokens: first-fit decreasing.

    An item longer than ``capacity`` gets a row of its own. Returns the item indices of each row,
    rows in order of first use, items in a row in their original order (deterministic).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return [sorted(row) for row in rows]


def bucket_width(n: int, quantum: int = 128, per_octave: int = 4) -> int:
    """The smallest width >= ``n`` on a fixed ladder: multiples of ``quantum`` up to
    ``per_octave * quantum``, then ``per_octave`` evenly spaced steps per doubling (128, 256,
    ..., 512, 640, 768, 896, 1024, 1280, ...). Past ``per_octave * quantum`` the padding stays
    under 1/per_octave of the width (below it, under ``quantum`` tokens), and widths from 1 to W
    take at most about per_octave * log2(W / quantum) + per_octave values, so a compiled kernel
    sees few shapes."""
    if n < 1:
        raise ValueError(f"a width is at least 1, got {n}")
    step = quantum
    while n > 2 * per_octave * step:
        step *= 2
    return -(-n // step) * step


def pack(examples: Sequence, *, pad_token_id: int = 0, row_capacity: int | None = None,
         pad_to_multiple_of: int = 1, bucketed: bool = False,
         split: Callable[[object], list[list[int]]] | None = None) -> PackedBatch:
    """Lay out ``examples`` (objects with ``prompt_ids`` and ``responses``) as a PackedBatch.

    ``row_capacity`` bounds the tokens per row; by default it is the longest example, so packing
    never makes attention rows longer than the longest example needs. ``bucketed``: one row
    holding every example, its width rounded up by `bucket_width`: the shape FlexAttention wants
    (block-sparse, so one long row costs what its blocks cost; and an epoch then compiles for a
    handful of widths instead of one shape per batch). ``split(example)`` groups an example's
    response indices: each group gets its own copy of the prompt (a model whose prompt states
    depend on the response's length: see rope.py); default one group, the prompt shared by all.
    Token-level tensors stay ordered example by example, response by response either way.
    """
    if not examples:
        raise ValueError("cannot pack an empty batch")
    num_responses = max(len(ex.responses) for ex in examples)
    units: list[tuple[int, list[int]]] = []  # (example, its responses in this copy)
    for e, ex in enumerate(examples):
        if len(ex.prompt_ids) == 0:
            raise ValueError(
                f"example {getattr(ex, 'index', e)} has an empty prompt: the first response token "
                "needs at least one prompt token (a BOS or chat-template token) to be predicted from")
        if any(len(r) == 0 for r in ex.responses):
            raise ValueError(f"example {getattr(ex, 'index', e)} has an empty response")
        groups = split(ex) if split is not None else [list(range(len(ex.responses)))]
        if sorted(k for g in groups for k in g) != list(range(len(ex.responses))):
            raise ValueError(f"split() must group every response of example {e} once, got {groups}")
        units.extend((e, list(g)) for g in groups if g)
    lengths = [len(examples[e].prompt_ids) + sum(len(examples[e].responses[k]) for k in group)
               for e, group in units]
    capacity = sum(lengths) if bucketed else max(row_capacity or 0, max(lengths))
    rows = plan_rows(lengths, capacity)
    width = max(sum(lengths[i] for i in row) for row in rows)
    width = bucket_width(width) if bucketed else width
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of

    num_rows = len(rows)
    input_ids = torch.full((num_rows, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((num_rows, width), dtype=torch.long)
    segment_ids = torch.full((num_rows, width), -1, dtype=torch.long)
    branch_ids = torch.zeros((num_rows, width), dtype=torch.long)
    view_lengths = torch.zeros((num_rows, width), dtype=torch.long)
    response_lengths = torch.zeros((len(examples), num_responses), dtype=torch.long)
    prompt_lengths = torch.tensor([len(ex.prompt_ids) for ex in examples], dtype=torch.long)

    # Token-level lists are filled per (example, response), then concatenated in that order.
    per_response: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for r, row in enumerate(rows):
        col = 0
        for slot, u in enumerate(row):
            e, group = units[u]
            ex = examples[e]
            prompt = list(ex.prompt_ids)
            p = len(prompt)
            input_ids[r, col:col + p] = torch.tensor(prompt)
            position_ids[r, col:col + p] = torch.arange(p)
            segment_ids[r, col:col + p] = slot
            view_lengths[r, col:col + p] = p + max(len(ex.responses[k]) for k in group)
            start = col + p
            last_prompt = r * width + col + p - 1
            for k in group:
                resp = ex.responses[k]
                n = len(resp)
                input_ids[r, start:start + n] = torch.tensor(list(resp))
                position_ids[r, start:start + n] = torch.arange(p, p + n)
                segment_ids[r, start:start + n] = slot
                branch_ids[r, start:start + n] = k + 1
                view_lengths[r, start:start + n] = p + n
                response_lengths[e, k] = n
                flat = r * width + start
                per_response[(e, k)] = ([last_prompt, *range(flat, flat + n - 1)], list(resp))
                start += n
            col = start
        # Padding keeps distinct, increasing positions (harmless, and avoids degenerate masks).
        if col < width:
            position_ids[r, col:] = torch.arange(width - col)

    order = sorted(per_response)
    sources = [s for key in order for s in per_response[key][0]]
    targets = [t for key in order for t in per_response[key][1]]
    seqs = [e * num_responses + k for e, k in order for _ in per_response[(e, k)][1]]
    return PackedBatch(**_metadata(examples, num_responses),
        input_ids=input_ids, position_ids=position_ids, segment_ids=segment_ids,
        branch_ids=branch_ids, source_index=torch.tensor(sources, dtype=torch.long),
        target_ids=torch.tensor(targets, dtype=torch.long),
        sequence_index=torch.tensor(seqs, dtype=torch.long), num_examples=len(examples),
        num_responses=num_responses, response_lengths=response_lengths,
        prompt_lengths=prompt_lengths, view_lengths=view_lengths)


def _metadata(examples: Sequence, num_responses: int) -> dict[str, torch.Tensor]:
    """Margins, strengths, labels and scores of ``examples`` (attributes ``margin``,
    ``strength``, ``label``, ``scores``
    where they have them) as tensors; a field none of them has is left out."""
    nan = float("nan")
    out = {}
    for attribute, name in (("margin", "margins"), ("strength", "strengths")):
        values = [getattr(ex, attribute, None) for ex in examples]
        if any(v is not None for v in values):
            out[name] = torch.tensor([nan if v is None else float(v) for v in values],
                                     dtype=torch.float64)
    labels = [getattr(ex, "label", None) for ex in examples]
    if any(lab is not None for lab in labels):
        out["labels"] = torch.tensor([True if lab is None else bool(lab) for lab in labels])
    scores = [getattr(ex, "scores", None) for ex in examples]
    if any(s is not None for s in scores):
        rows = [[float(v) for v in (s or [])][:num_responses] for s in scores]
        out["scores"] = torch.tensor([row + [nan] * (num_responses - len(row)) for row in rows],
                                     dtype=torch.float64)
    return out


def to_stream(batch: PackedBatch) -> PackedBatch:
    """The same batch as one padding-free row: every row's real tokens one after another, the
    examples' segments renumbered to stay distinct, the predicting positions moved with them.
    Token-level tensors keep their order, so results line up with the batch's."""
    real = batch.segment_ids >= 0
    rows, width = batch.segment_ids.shape
    offset = torch.arange(rows, device=real.device)[:, None] * (int(batch.segment_ids.max()) + 1)
    new_index = torch.full((rows * width,), -1, dtype=torch.long, device=real.device)
    new_index[real.reshape(-1)] = torch.arange(int(real.sum()), device=real.device)
    return PackedBatch(
        input_ids=batch.input_ids[real][None], position_ids=batch.position_ids[real][None],
        view_lengths=None if batch.view_lengths is None else batch.view_lengths[real][None],
        segment_ids=(batch.segment_ids + offset)[real][None], branch_ids=batch.branch_ids[real][None],
        source_index=new_index[batch.source_index], target_ids=batch.target_ids,
        sequence_index=batch.sequence_index, num_examples=batch.num_examples,
        num_responses=batch.num_responses, response_lengths=batch.response_lengths,
        prompt_lengths=batch.prompt_lengths, margins=batch.margins,
        strengths=batch.strengths, labels=batch.labels,
        scores=batch.scores)
