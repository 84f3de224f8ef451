"""The typed batches objectives read, and what they return.

One batch per data shape carries everything an objective of that shape may read: the sequence
log-probs, the reference's, the response lengths, the examples' metadata (ODPO's margin, the
unpaired labels, the listwise scores), the per-token views (LD-DPO, WPO), the sequential KL
(TDPO) and the running statistics the trainer keeps (BCO's δ, β-DPO's gap mean and spread).
Fields an objective does not read stay ``None``; each registry entry declares the fields it
reads (``Objective.reads``). ``compute*`` build a batch from keyword arguments; the trainer
builds one per micro-batch from the engine's ``SequenceLogps`` and the packed batch's metadata
(``prefalign.train.step_loss.build_batch``).

Every objective returns an :class:`ObjectiveOutput`: its per-example losses and its implicit
rewards (detached), from which :mod:`.metrics` computes the logged reward metrics in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from .common import f_divergence_scores, log_ratio, per_token


@dataclass(frozen=True)
class ObjectiveOutput:
    """Per-example losses (differentiable) and the objective's implicit rewards (detached).

    Pairwise: ``chosen_rewards`` / ``rejected_rewards`` [B]; unpaired: ``rewards`` [B] (one
    per completion); listwise: ``rewards`` [B, K]. Rewards are None where the objective has no
    implicit reward (SFT).
    """

    losses: Tensor
    chosen_rewards: Tensor | None = None
    rejected_rewards: Tensor | None = None
    rewards: Tensor | None = None
    parts: dict[str, Tensor] | None = None  # a mixture's terms' own losses, by name

    def scaled(self, weights: Tensor) -> "ObjectiveOutput":
        """The same output with each loss multiplied by ``weights`` (no gradient through them)."""
        return dataclasses.replace(self, losses=self.losses * weights.detach().to(self.losses.dtype))


def _detached(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach()


@dataclass(frozen=True)
class PairwiseBatch:
    """B (chosen, rejected) pairs: Tensor[B] each unless noted.

    * ``policy_*_logps`` / ``ref_*_logps``: summed response log-probs; ``*_lengths``: tokens.
    * ``margin``: the pair's preference strength (ODPO), in the scores' units.
    * ``strength``: p(chosen ≻ rejected) ∈ [0, 1] (soft-label objectives).
    * ``chosen_seq_kl`` / ``rejected_seq_kl``: Σ_t KL(π_ref ‖ π) per response (TDPO).
    * ``*_token_logps``, ``*_token_mask``, ``ref_*_token_logps``, ``*_token_log_sumsq``:
      per-token views [B, T] (LD-DPO, WPO).
    * ``delta``, ``gap_mean``, ``gap_std``: running statistics, 0-d tensors (BCO-pair's shift,
      β-DPO's threshold and spread).
    * ``ref_extra_*_logps`` [B, R−1]: the further reference models' summed log-probs (MRPO),
      beside the main reference's ``ref_*_logps``.
    * ``f_divergence`` / ``f_alpha``: the f-divergence the scores use (set by the f-divergence
      modifier; ``f_alpha`` in TRL's convention, where α → 1 is reverse KL).
    """

    policy_chosen_logps: Tensor
    policy_rejected_logps: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    chosen_lengths: Tensor | None = None
    rejected_lengths: Tensor | None = None
    margin: Tensor | None = None
    strength: Tensor | None = None
    chosen_seq_kl: Tensor | None = None
    rejected_seq_kl: Tensor | None = None
    chosen_token_logps: Tensor | None = None
    rejected_token_logps: Tensor | None = None
    chosen_token_mask: Tensor | None = None
    rejected_token_mask: Tensor | None = None
    ref_chosen_token_logps: Tensor | None = None
    ref_rejected_token_logps: Tensor | None = None
    chosen_token_log_sumsq: Tensor | None = None
    rejected_token_log_sumsq: Tensor | None = None
    delta: Tensor | None = None
    gap_mean: Tensor | None = None
    gap_std: Tensor | None = None
    step_mean_length: Tensor | None = None  # a mixture's sft term: the step's mean chosen length
    ref_extra_chosen_logps: Tensor | None = None  # [B, R−1]: further references' (MRPO)
    ref_extra_rejected_logps: Tensor | None = None
    f_divergence: str = "reverse_kl"
    f_alpha: float = 0.5

    def logratios(self) -> tuple[Tensor, Tensor]:
        """(ρ_w, ρ_l) = (π_w − ref_w, π_l − ref_l)."""
        return (
            log_ratio(self.policy_chosen_logps, self.ref_chosen_logps),
            log_ratio(self.policy_rejected_logps, self.ref_rejected_logps),
        )

    def lengths(self) -> tuple[Tensor, Tensor]:
        """(|y_w|, |y_l|); raises a ValueError saying what to pass when they are missing."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            raise ValueError(
                "needs response lengths: pass chosen_lengths and rejected_lengths (number of "
                "response tokens, Tensor[batch]) or the per-token masks chosen_token_mask / "
                "rejected_token_mask"
            )
        return self.chosen_lengths, self.rejected_lengths

    def scores(self) -> tuple[Tensor, Tensor]:
        """(s_w, s_l): the log-ratios passed through the f-divergence score (TRL step 1)."""
        rho_w, rho_l = self.logratios()
        return (
            f_divergence_scores(rho_w, self.f_divergence, self.f_alpha),
            f_divergence_scores(rho_l, self.f_divergence, self.f_alpha),
        )

    def score_margin(self) -> Tensor:
        """Δ = s_w − s_l (h = ρ_w − ρ_l under reverse KL)."""
        s_w, s_l = self.scores()
        return s_w - s_l

    def output(self, losses: Tensor, beta: float, *, per_token_reward: bool = False) -> ObjectiveOutput:
        """``losses`` with the DPO family's implicit rewards β·ρ (reference-free: β·π, or
        β·π/|y| with ``per_token_reward``), detached."""
        if self.ref_chosen_logps is None:
            w, lo = self.policy_chosen_logps, self.policy_rejected_logps
        else:
            w, lo = self.logratios()
        if per_token_reward:
            len_w, len_l = self.lengths()
            w, lo = per_token(w, len_w), per_token(lo, len_l)
        return ObjectiveOutput(losses, _detached(beta * w), _detached(beta * lo))


@dataclass(frozen=True)
class UnpairedBatch:
    """B single completions with a desirable (True) / undesirable (False) label.

    ``kl_logps`` / ``ref_kl_logps`` [n] are the log-probs of mismatched prompt–completion
    pairs (KTO's reference point) and ``kl`` a reference point given directly; ``delta`` is
    BCO's running reward shift (0-d tensor); ``step_mean_length`` the step's mean response
    length (0-d tensor) for a token mean over the whole step.
    """

    policy_logps: Tensor
    labels: Tensor
    ref_logps: Tensor | None = None
    lengths: Tensor | None = None
    kl_logps: Tensor | None = None
    ref_kl_logps: Tensor | None = None
    kl: Tensor | None = None
    delta: Tensor | None = None
    # the mean response length over the whole optimizer step (every micro-batch and process):
    # a batch token mean divides by it, so a step's loss is the step's token mean however the
    # step is split (0-d; the trainer fills it)
    step_mean_length: Tensor | None = None
    values: Tensor | None = None  # DRO: the value baseline V(x) of each prompt (trainable)
    feedback: Tensor | None = None  # DRO: each completion's scalar reward (None: from labels)

    def require_lengths(self) -> Tensor:
        """|y| per example; raises a ValueError saying what to pass when missing."""
        if self.lengths is None:
            raise ValueError("needs response lengths: pass lengths= (number of response tokens, Tensor[batch])")
        return self.lengths

    def logratios(self) -> Tensor:
        """ρ = π − ref per completion."""
        return log_ratio(self.policy_logps, self.ref_logps)

    def output(self, losses: Tensor, beta: float) -> ObjectiveOutput:
        """``losses`` with the implicit rewards β·ρ, detached."""
        return ObjectiveOutput(losses, rewards=_detached(beta * self.logratios()))


@dataclass(frozen=True)
class ListwiseBatch:
    """B lists of K completions each: Tensor[B, K] log-probs, scores and validity mask."""

    policy_logps: Tensor
    ref_logps: Tensor | None
    scores: Tensor | None
    lengths: Tensor | None
    mask: Tensor


# What each batch field holds: (shape, meaning). B = batch, T = padded response length, K = list size.
FIELD_DOCS = {
    "policy_chosen_logps": ("[B]", "policy log-probs of the chosen responses, summed over response tokens"),
    "policy_rejected_logps": ("[B]", "the same for the rejected responses"),
    "ref_chosen_logps": ("[B]", "reference log-probs of the chosen responses"),
    "ref_rejected_logps": ("[B]", "reference log-probs of the rejected responses"),
    "chosen_lengths": ("[B]", "response tokens of the chosen responses (compute() takes them from the masks when absent)"),
    "rejected_lengths": ("[B]", "response tokens of the rejected responses"),
    "margin": ("[B], ≥ 0", "a pair's preference strength (the `margin` column, else `score_chosen − score_rejected`)"),
    "strength": ("[B], in [0, 1]", "a pair's p(chosen ≻ rejected) (the `strength` column: a judge's "
                 "probability, a jury's agreement)"),
    "chosen_seq_kl": ("[B]", "Σ_t KL(π_ref(·\\|x,y<t) ‖ π_θ(·\\|x,y<t)) over the chosen response, with gradient "
                      "through π_θ (the engine's `kl_reference`, or `sequence_kl(policy_logits, ref_logits, mask)`)"),
    "rejected_seq_kl": ("[B]", "the same over the rejected response"),
    "chosen_token_logps": ("[B, T]", "policy per-token log-probs of the chosen responses (padded; masked values ignored)"),
    "rejected_token_logps": ("[B, T]", "the same for the rejected responses"),
    "chosen_token_mask": ("[B, T] bool", "True on the chosen responses' tokens"),
    "rejected_token_mask": ("[B, T] bool", "True on the rejected responses' tokens"),
    "ref_chosen_token_logps": ("[B, T]", "reference per-token log-probs (same masks)"),
    "ref_rejected_token_logps": ("[B, T]", "reference per-token log-probs (same masks)"),
    "chosen_token_log_sumsq": ("[B, T]", "log Σ_v p_θ(v\\|x,y<t)² under the policy (`log_sum_sq_probs(logits)`); no gradient needed"),
    "rejected_token_log_sumsq": ("[B, T]", "the same for the rejected responses"),
    "delta": ("scalar", "the reward shift δ: the running mean of the rewards (the trainer's running statistic)"),
    "step_mean_length": ("scalar", "the mean response length of the whole optimizer step (all micro-batches and processes; the trainer's): a batch token mean divides by it"),
    "gap_mean": ("scalar", "β-DPO's threshold M_0: the running mean of h = ρ_w − ρ_l"),
    "gap_std": ("scalar", "β-DPO's spread σ: the running std of h"),
    "ref_extra_chosen_logps": ("[B, R−1]", "the chosen responses' log-probs under each further "
                               "reference model (MRPO; the main one's are ref_chosen_logps)"),
    "ref_extra_rejected_logps": ("[B, R−1]", "the same for the rejected responses"),
    "f_divergence": ("—", "set by the f-divergence modifier from `f_divergence_type` (and `f_alpha_convention`)"),
    "f_alpha": ("—", "set by the f-divergence modifier from `f_alpha_divergence_coef`"),
    "policy_logps": ("[B] or [B, K]", "policy log-probs of each completion, summed"),
    "labels": ("[B] bool", "True = desirable (compute_unpaired's argument; None for npo: all undesirable, sft: all desirable)"),
    "ref_logps": ("[B] or [B, K]", "reference log-probs of each completion"),
    "lengths": ("[B] or [B, K]", "response tokens of each completion"),
    "kl_logps": ("[n]", "policy log-probs of mismatched prompt–completion pairs (each prompt with a completion of another)"),
    "ref_kl_logps": ("[n]", "reference log-probs of the same mismatched pairs"),
    "kl": ("scalar", "KTO's reference point given directly, instead of kl_logps / ref_kl_logps (e.g. averaged over processes)"),
    "values": ("[B]", "V(x), a learned value of each example's prompt (DRO's baseline; in training a "
               "linear head on the policy's hidden state, its gradient stopped at the head)"),
    "feedback": ("[B]", "each completion's scalar reward r(x, y) (the data's `reward` column; absent: "
                 "from the label)"),
    "scores": ("[B, K]", "label scores of a list's completions (higher = better)"),
    "mask": ("[B, K] bool", "True where a ragged list has a completion"),
}

PAIRWISE_FIELDS = frozenset(f.name for f in dataclasses.fields(PairwiseBatch))
UNPAIRED_FIELDS = frozenset(f.name for f in dataclasses.fields(UnpairedBatch))
LISTWISE_FIELDS = frozenset(f.name for f in dataclasses.fields(ListwiseBatch))
