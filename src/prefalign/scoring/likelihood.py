"""Scorers from log-likelihoods under language models (all through the engine's packed path).

- ``FollowUpLikelihood`` (FLR, "follow-up likelihood as reward"): how likely a scoring model finds
  a positive follow-up from the user after the response ("Thanks, that's exactly right.") versus
  a negative one ("That's wrong."): ``mean_f+ log p(f+ | x, y) - mean_f- log p(f- | x, y)``.
- ``DensityRatio`` (CDR, strong-over-weak log-density ratio):
  ``log p_strong(y | x) - log p_weak(y | x)``.
- ``ImplicitReward``: the DPO implicit reward of a trained policy against its reference,
  ``beta * (log pi(y | x) - log pi_ref(y | x))``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

from prefalign.data.records import is_conversational

from prefalign.generation.types import PromptItem

from .base import Group, Scorer, Score, per_group
from .models import LogProbModel
from .registry import scorer_kind, two_paths

POSITIVE_FOLLOW_UPS = ("Thank you, that is exactly what I needed.",
                       "Great, that's correct and very helpful.")
NEGATIVE_FOLLOW_UPS = ("That's wrong.", "That is not what I asked for.")


class DensityRatio(Scorer):
    name = "cdr"

    def __init__(self, strong: str, weak: str, *, device: str | None = None):
        super().__init__()
        self.strong = LogProbModel(strong, device=device)
        self.weak = LogProbModel(weak, device=device)

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        hi, lo = self.strong.response_logps(groups), self.weak.response_logps(groups)
        return [[Score(a - b) for a, b in zip(rh, rl)] for rh, rl in zip(hi, lo)]

    def describe(self) -> dict:
        return {"scorer": self.name, "strong": self.strong.path, "weak": self.weak.path}


class ImplicitReward(Scorer):
    name = "implicit"

    def __init__(self, policy: str, reference: str, *, beta: float = 0.1,
                 device: str | None = None):
        super().__init__()
        self.beta = float(beta)
        self.policy = LogProbModel(policy, device=device)
        self.reference = LogProbModel(reference, device=device)

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        pi, ref = self.policy.response_logps(groups), self.reference.response_logps(groups)
        return [[Score(self.beta * (a - b)) for a, b in zip(rp, rr)] for rp, rr in zip(pi, ref)]

    def describe(self) -> dict:
        return {"scorer": self.name, "policy": self.policy.path,
                "reference": self.reference.path, "beta": self.beta}


class FollowUpLikelihood(Scorer):
    name = "flr"

    def __init__(self, model: str, *, positive: Sequence[str] = POSITIVE_FOLLOW_UPS,
                 negative: Sequence[str] = NEGATIVE_FOLLOW_UPS, device: str | None = None):
        super().__init__()
        self.lm = LogProbModel(model, device=device)
        self.positive, self.negative = list(positive), list(negative)

    def _example(self, item: PromptItem, response: str) -> SimpleNamespace:
        tok = self.lm.tokenizer
        follow_ups = self.positive + self.negative
        if getattr(tok, "chat_template", None):
            convo = item.messages() + [{"role": "assistant", "content": response}]
            context = tok.apply_chat_template(convo, tokenize=False)
            tails = []
            for f in follow_ups:
                full = tok.apply_chat_template(convo + [{"role": "user", "content": f}],
                                               tokenize=False)
                if not full.startswith(context):
                    raise ValueError(f"{self.lm.path}: the chat template does not render the "
                                     "conversation as a prefix of the conversation plus a "
                                     "follow-up turn; FLR needs an append-only template")
                tails.append(full[len(context):])
        else:
            system = f"{item.system}\n\n" if item.system else ""
            prompt = item.text() if is_conversational(item.prompt) else item.prompt
            context = system + prompt + response
            tails = ["\n" + f for f in follow_ups]
        ctx_ids = tok(context, add_special_tokens=True)["input_ids"]
        tail_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in tails]
        return SimpleNamespace(prompt_ids=ctx_ids, responses=tail_ids)

    def score(self, groups: Sequence[Group]) -> list[list[Score]]:
        examples = [self._example(item, r) for item, responses in groups for r in responses]
        values = self.lm.logps(examples)
        k = len(self.positive)
        flat = [Score(sum(v[:k]) / k - sum(v[k:]) / len(self.negative)) for v in values]
        return per_group(flat, groups)

    def describe(self) -> dict:
        return {"scorer": self.name, "model": self.lm.path, "positive": self.positive,
                "negative": self.negative}


@scorer_kind("flr", args="`PATH`",
             summary="follow-up likelihood: mean log p(positive user follow-up) - mean log "
                     "p(negative one) after the response")
def _build_flr(args: str, options: dict, device: str | None) -> Scorer:
    return FollowUpLikelihood(args, device=device, **options)


@scorer_kind("cdr", args="`STRONG,WEAK`", summary="log p_strong(y|x) - log p_weak(y|x)")
def _build_cdr(args: str, options: dict, device: str | None) -> Scorer:
    return DensityRatio(*two_paths(args, "cdr"), device=device, **options)


@scorer_kind("implicit", args="`POLICY,REF`", summary="β·(log π(y|x) - log π_ref(y|x))",
             options={"beta": "β (0.1)"})
def _build_implicit(args: str, options: dict, device: str | None) -> Scorer:
    return ImplicitReward(*two_paths(args, "implicit"), device=device, **options)
