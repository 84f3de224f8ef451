"""``--revise SPEC``: a model rewrites a response after critiquing it, and the revision against
the original becomes a pair (SynPO's self-refiner, Dong et al. 2024; BMC's improved loser).

Per prompt, the lowest-scored response (the first of equal minima) is revised by the reviser
(a generator spec: a model folder, ``hf:PATH``, ``vllm:PATH``, ``openai:URL#MODEL``, or
``hf:@policy``: the policy itself, each iterate round its own): first a critique of the response
is written (``CRITIQUE``; by the reviser, or by ``--critic``, another model: a judge's critique),
then the reviser writes a revision given that critique (``REVISE``), both greedy, at most
``--max-new-tokens`` each. The revision is scored by the job's scorer. Critique, revision and
score go into the durable log with the prompt's samples, so a rerun resumes without asking again.
When the output is built, a revision that scores above its original by more than ``--min-gap``
(and 0) makes the pair (revision ≻ original), with ``critique``, ``revision_of`` (the original's
sample index) and ``revision: true`` columns, in addition to the strategy's records; one that
does not is counted (``revision_not_better``).
"""

from __future__ import annotations

from typing import Any

from prefalign.data.records import PairRecord
from prefalign.generation.types import Completion, PromptItem, SamplingConfig, response_value

CRITIQUE = ("Here is a question and a response to it.\n\n[Question]\n{question}\n\n[Response]\n"
            "{response}\n\nPoint out briefly what is wrong or missing in the response.")
REVISE = ("Here is a question, a response to it and a critique of the response.\n\n"
          "[Question]\n{question}\n\n[Response]\n{response}\n\n[Critique]\n{critique}\n\n"
          "Write an improved response that fixes what the critique says. Answer with the "
          "improved response only.")


def _ask(reviser, texts: list[str], max_new_tokens: int, seed: int) -> list[str]:
    items = [PromptItem(index=i, prompt=[{"role": "user", "content": t}])
             for i, t in enumerate(texts)]
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    return [c[0].text for c in reviser.generate(items, 1, sampling, seed)]


def revise_chunk(reviser, score, items: list[PromptItem], completions: list[list[Completion]],
                 scores, *, max_new_tokens: int, seed: int, critic=None
                 ) -> list[dict[str, Any] | None]:
    """Per prompt: the revision of its lowest-scored response (critique, text, score, reason)
    or None (no scored response); ``score(items, completions)`` scores as the job does; the
    ``critic`` (default: the reviser) writes the critiques."""
    picked = []
    for comps, row in zip(completions, scores):
        scored = [(s.value, j) for j, s in enumerate(row) if s is not None and s.value is not None]
        picked.append(min(scored)[1] if scored else None)
    asks = [(item, comps[j].text, j) for item, comps, j in zip(items, completions, picked)
            if j is not None]
    critiques = _ask(critic or reviser, [CRITIQUE.format(question=item.text(), response=text)
                               for item, text, _ in asks], max_new_tokens, seed)
    revisions = _ask(reviser, [REVISE.format(question=item.text(), response=text, critique=c)
                               for (item, text, _), c in zip(asks, critiques)],
                     max_new_tokens, seed)
    revised_items = [item for item, _, _ in asks]
    revised_scores = score(revised_items, [[Completion(r, seed)] for r in revisions]) \
        if asks else []
    out: list[dict[str, Any] | None] = [None] * len(items)
    position = {id(item): n for n, item in enumerate(items)}
    for (item, _, j), critique, text, row in zip(asks, critiques, revisions, revised_scores):
        score = row[0]
        out[position[id(item)]] = {
            "of": j, "critique": critique, "text": text,
            "score": score.value if score is not None else None,
            "reason": score.reason if score is not None else "empty_response"}
    return out


def revision_pair(item: PromptItem, entry: dict[str, Any], min_gap: float, dropped
                  ) -> PairRecord | None:
    """The pair (revision ≻ original) of a logged prompt, or None (counted)."""
    revision = entry.get("revision")
    if not revision:
        return None
    original = entry["scores"][revision["of"]]
    new = revision["score"]
    if new is None or original is None or not (new - original > 0 and new - original >= min_gap):
        dropped["revision_not_better"] += 1
        return None
    text = entry["completions"][revision["of"]]["text"]
    return PairRecord(item.prompt, response_value(item.prompt, revision["text"]),
                      response_value(item.prompt, text), margin=new - original,
                      score_chosen=new, score_rejected=original, system=item.system,
                      meta={"prompt_index": item.index, "revision": True,
                            "revision_of": revision["of"], "critique": revision["critique"]})
