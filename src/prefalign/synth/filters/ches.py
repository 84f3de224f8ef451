"""``ches``: drop the pairs most likely to displace likelihood, by their centred hidden embedding
similarity ("Unintentional Unalignment: Likelihood Displacement in Direct Preference
Optimization", Razin et al. 2025).

DPO on a pair whose chosen and rejected responses look alike to the model can lower the chosen
response's likelihood, and shift mass to unintended responses (the paper's refusal-rate drop).
The paper measures the likeness with CHES; this filter takes its length-normalised form,
CHES(y_w, y_l) = ⟨h̄_w, h̄_l⟩ − ‖h̄_l‖², where h̄ is the mean over a response's tokens of the
model's last hidden state at the positions that predict them (after the final norm: the
embedding the LM head reads). The ``fraction`` of pairs with the highest CHES is dropped
(``similar_hidden_embeddings``, rounded down, ties in record order); every kept pair carries its
``ches`` column. The hidden states come from a plain forward of each prompt + response.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from prefalign.core.registry import Option
from prefalign.data.tokenization import tokenize_record

from . import pair_filter
from .logps import require_pairs


def ches_score(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """⟨h̄_w, h̄_l⟩ − ‖h̄_l‖² of two mean hidden embeddings."""
    chosen, rejected = chosen.double(), rejected.double()
    return float(chosen @ rejected - rejected @ rejected)


@torch.no_grad()
def mean_hidden(model, prompt_ids: list[int], response_ids: list[int], device) -> torch.Tensor:
    """The mean last hidden state over the positions that predict ``response_ids``."""
    ids = torch.tensor([prompt_ids + response_ids], device=device)
    hidden = model.base_model(input_ids=ids).last_hidden_state[0]
    start = len(prompt_ids) - 1
    return hidden[start:start + len(response_ids)].float().mean(0).cpu()


@pair_filter(
    "ches", summary="the fraction of pairs with the highest centred hidden embedding similarity "
                    "(CHES) of chosen and rejected",
    paper="Unintentional Unalignment: Likelihood Displacement in Direct Preference Optimization "
          "(Razin et al. 2025)",
    options=[
        Option("model", str, None, "the model folder whose hidden states are compared "
                                   "(the policy to be trained)", required=True),
        Option("fraction", float, 0.1, "share of the pairs dropped",
               rule=(lambda v: 0 <= v < 1, "in [0, 1)")),
        Option("device", str | None, None, "where the model runs (default: cuda when "
                                           "available, else cpu)"),
    ])
def ches(records, options, dropped: Counter) -> list:
    require_pairs(records, "ches")
    if not records:
        return []
    from transformers import AutoTokenizer

    from prefalign.engine.loading import check_model, load_causal_lm
    from prefalign.scoring.models import default_device

    path, device = options["model"], default_device(options["device"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = load_causal_lm(path, dtype=torch.float32,
                           attn_implementation=check_model(path)).to(device).eval()
    scores = []
    for i, record in enumerate(records):
        ex, _ = tokenize_record(record, tokenizer, index=i)
        scores.append(ches_score(mean_hidden(model, ex.prompt_ids, ex.responses[0], device),
                                 mean_hidden(model, ex.prompt_ids, ex.responses[1], device)))
    count = math.floor(options["fraction"] * len(records))
    most_similar = set(sorted(range(len(records)), key=lambda i: -scores[i])[:count])
    kept = []
    for i, record in enumerate(records):
        if i in most_similar:
            dropped["similar_hidden_embeddings"] += 1
        else:
            record.meta["ches"] = scores[i]
            kept.append(record)
    return kept
