"""What the model-based filters share: each pair's summed response log-probs under a model,
computed with the engine's packed forward (`scoring.models.LogProbModel`), the pair tokenized
exactly as training tokenizes it (its sampled ids when it carries them)."""

from __future__ import annotations

from prefalign.data.tokenization import tokenize_record


def pair_logps(records, model_path: str, *, device: str | None = None
               ) -> tuple[list[tuple[float, float]], list[tuple[int, int]]]:
    """Per pair: (log π(chosen), log π(rejected)) under the model at ``model_path``, and the
    two responses' token counts."""
    from prefalign.scoring.models import LogProbModel

    model = LogProbModel(model_path, device=device)
    examples = [tokenize_record(r, model.tokenizer, index=i)[0] for i, r in enumerate(records)]
    values = model.logps(examples)
    lengths = [(len(ex.responses[0]), len(ex.responses[1])) for ex in examples]
    return [(v[0], v[1]) for v in values], lengths


def require_pairs(records, name: str) -> None:
    from prefalign.data.records import PairRecord

    for i, record in enumerate(records):
        if not isinstance(record, PairRecord):
            raise ValueError(f"filter {name}: record {i + 1} is {record.kind}; it filters pairs "
                             "(--pairs with pairwise output)")
