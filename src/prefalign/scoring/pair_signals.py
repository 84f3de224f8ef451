"""What a model says about a preference pair, for the filters of synth and `prefalign data
audit`: each response's summed log-prob (the engine's packed forward, `LogProbModel`) and the
centred hidden embedding similarity of its two responses (CHES, Razin et al. 2025). A pair is
tokenized exactly as training tokenizes it (with its sampled ids when it carries them)."""

from __future__ import annotations

import torch

from prefalign.data.tokenization import tokenize_record

from .models import LogProbModel, default_device


def tokenized(records, tokenizer) -> list:
    """Each pair tokenized as training does, or None for one that cannot be (a `DataError`
    naming it, e.g. no exact prompt/response boundary): the callers count those."""
    from prefalign.data.errors import DataError

    out = []
    for i, record in enumerate(records):
        try:
            out.append(tokenize_record(record, tokenizer, index=i)[0])
        except DataError:
            out.append(None)
    return out


def pair_logps(records, model_path: str, *, device: str | None = None
               ) -> tuple[list[tuple[float, float] | None], list[tuple[int, int] | None]]:
    """Per pair: (log π(chosen), log π(rejected)) under the model at ``model_path``, and the
    two responses' token counts; None for a pair that cannot be tokenized."""
    model = LogProbModel(model_path, device=device)
    examples = tokenized(records, model.tokenizer)
    values = iter(model.logps([ex for ex in examples if ex is not None]))
    logps, lengths = [], []
    for ex in examples:
        if ex is None:
            logps.append(None)
            lengths.append(None)
            continue
        v = next(values)
        logps.append((v[0], v[1]))
        lengths.append((len(ex.responses[0]), len(ex.responses[1])))
    return logps, lengths


def ches_score(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Length-normalised CHES of two mean hidden embeddings: ⟨h̄_w, h̄_l⟩ − ‖h̄_l‖²."""
    chosen, rejected = chosen.double(), rejected.double()
    return float(chosen @ rejected - rejected @ rejected)


@torch.no_grad()
def mean_hidden(model, prompt_ids: list[int], response_ids: list[int], device) -> torch.Tensor:
    """The mean last hidden state (after the final norm: what the LM head reads) over the
    positions that predict ``response_ids``."""
    ids = torch.tensor([prompt_ids + response_ids], device=device)
    hidden = model.base_model(input_ids=ids).last_hidden_state[0]
    start = len(prompt_ids) - 1
    return hidden[start:start + len(response_ids)].float().mean(0).cpu()


def pair_ches(records, model_path: str, *, device: str | None = None) -> list[float | None]:
    """Each pair's CHES under the model at ``model_path`` (a plain forward per response); None
    for a pair that cannot be tokenized."""
    from transformers import AutoTokenizer

    from prefalign.engine.loading import check_model, load_causal_lm

    device = default_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = load_causal_lm(model_path, dtype=torch.float32,
                           attn_implementation=check_model(model_path)).to(device).eval()
    scores = []
    for ex in tokenized(records, tokenizer):
        scores.append(None if ex is None else ches_score(
            mean_hidden(model, ex.prompt_ids, ex.responses[0], device),
            mean_hidden(model, ex.prompt_ids, ex.responses[1], device)))
    return scores
