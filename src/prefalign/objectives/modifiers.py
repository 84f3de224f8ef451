"""Modifiers shared by many pairwise objectives, declared once and applied by the dispatcher.

An objective lists the modifiers it takes (``modifiers=(F_DIVERGENCE, LD_DPO, WPO)``); the
registry appends their hyperparameters to the objective's own, and the dispatcher applies them
around the objective's function: :meth:`Modifier.prepare` changes the batch before the loss
(f-DPO's scores, LD-DPO's rebuilt log-probs), :meth:`Modifier.finish` changes the output after
it (WPO's pair weights). The objective function itself never sees their hyperparameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import params
from .batches import ObjectiveOutput, PairwiseBatch
from .token_level import LD_INPUTS, LD_REF_INPUTS, WPO_INPUTS, ld_sequence_logps, wpo_weights


def _require(batch: PairwiseBatch, names: frozenset[str], why: str) -> None:
    missing = sorted(n for n in names if getattr(batch, n) is None)
    if missing:
        raise ValueError(f"{why} needs the extra inputs {', '.join(missing)} (see prefalign.objectives docs)")


class Modifier:
    """A generic change to pairwise objectives, with its hyperparameters and the batch fields
    it reads when active."""

    name: str = ""
    title: str = ""  # what the docs call it
    paper: str = ""
    hyperparameters: tuple = ()
    inputs: frozenset[str] = frozenset()  # batch fields a caller may fill for it
    doc: str = ""  # its section in docs/objectives.md (markdown)
    differences: tuple = ()  # rows of the docs' "where papers and TRL differ" table

    def active(self, hps: dict[str, Any]) -> bool:
        raise NotImplementedError

    def reads(self, entry, hps: dict[str, Any]) -> frozenset[str]:
        return frozenset()

    def prepare(self, entry, batch: PairwiseBatch, hps: dict[str, Any]) -> PairwiseBatch:
        return batch

    def finish(self, entry, batch: PairwiseBatch, hps: dict[str, Any], out: ObjectiveOutput) -> ObjectiveOutput:
        return out

    def __repr__(self) -> str:
        return f"<modifier {self.name}>"


class FDivergence(Modifier):
    name = "f_divergence"
    title = "f-DPO"
    paper = "Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse Divergence Constraints"
    hyperparameters = params.F_DIVERGENCE
    doc = (
        "- **`f_divergence_type`** / **`f_alpha_divergence_coef`** / **`f_alpha_convention`** "
        "(f-DPO, *{paper}*; TRL's step 1) on the objectives that list them: the log-ratio ρ "
        "becomes the score s = ρ (`reverse_kl`), −e^{{−ρ}} (`forward_kl`), log σ(ρ) "
        "(`js_divergence`) or the α-divergence's f′ (`alpha_divergence`). Two conventions for α "
        "exist and only α = 0.5 agrees: TRL (≥ 0.29, the default here, "
        "`f_alpha_convention=\"trl\"`) uses s = e^{{(α−1)ρ}}/(α−1), where α → 1 is reverse KL and "
        "α = 0 forward KL; the paper (`f_alpha_convention=\"paper\"`) uses f′(u) = (1 − u^{{−α}})/α, "
        "s = (1 − e^{{−αρ}})/α, where α → 0 is reverse KL and α = 1 forward KL. The paper's α is "
        "TRL's 1 − α: the two scores differ by the constant 1/α, which cancels in s_w − s_l (DPO, "
        "IPO unnormalized, hinge, …) but not where a score is used on its own (NCA, SPPO, BCO-pair, "
        "the per-token forms), where `\"paper\"` uses the paper's score exactly. The exponent is "
        "clamped at 80 (11 in fp16); reverse KL's limit is ρ exactly."
    )
    differences = (
        ("f-DPO α of the α-divergence", "≥ 0.29: s = e^{(α−1)ρ}/(α−1), α → 1 is reverse KL",
         "f′(u) = (1 − u^{−α})/α, α → 0 is reverse KL (the paper's α = TRL's 1 − α)",
         "`f_alpha_convention=\"trl\"`", "`f_alpha_convention=\"paper\"`"),
    )

    def active(self, hps):
        return hps.get("f_divergence_type", "reverse_kl") != "reverse_kl"

    def prepare(self, entry, batch, hps):
        kind = hps["f_divergence_type"]
        if kind == "alpha_divergence" and hps.get("f_alpha_convention", "trl") == "paper":
            kind = "alpha_divergence_paper"
        return dataclasses.replace(batch, f_divergence=kind, f_alpha=hps["f_alpha_divergence_coef"])


class LengthDesensitization(Modifier):
    name = "ld_dpo"
    title = "LD-DPO"
    paper = "Length Desensitization in Directed Preference Optimization"
    hyperparameters = params.LD_MODIFIERS
    inputs = LD_INPUTS | LD_REF_INPUTS
    doc = (
        "- **`ld_alpha`** (LD-DPO, *{paper}*): with ℓ = min(|y_w|, |y_l|), each sequence log-prob "
        "becomes Σ_{{t≤ℓ}} log p_t + α·Σ_{{t>ℓ}} log p_t, for the policy and (by default, as the "
        "paper and TRL ≥ 0.29) the reference. The summed log-prob arguments are then replaced by "
        "the sums rebuilt from the per-token inputs. `ld_apply_to_reference=False` is TRL ≤ 0.28 "
        "(policy only). Token positions are counted along each mask, so masks need not start at "
        "column 0. `ld_alpha=1` is the plain sums, so it needs no per-token inputs. Helpers: "
        "`ld_sequence_logps(...)`, `ld_token_weights(...)`."
    )
    differences = (
        ("LD-DPO on the reference", "≥ 0.29 yes, ≤ 0.28 no", "yes", "`ld_apply_to_reference=True`", "`False`"),
    )

    def active(self, hps):
        alpha = hps.get("ld_alpha")
        return alpha is not None and alpha != 1.0  # α = 1 is the plain sums: nothing to rebuild

    def _with_reference(self, entry, hps) -> bool:
        return entry.needs_reference and hps.get("ld_apply_to_reference", True)

    def reads(self, entry, hps):
        if not self.active(hps):
            return frozenset()
        return LD_INPUTS | (LD_REF_INPUTS if self._with_reference(entry, hps) else frozenset())

    def prepare(self, entry, batch, hps):
        if not self.active(hps):
            return batch
        alpha = hps["ld_alpha"]
        _require(batch, LD_INPUTS, f"ld_alpha={alpha:g} (LD-DPO)")
        masks = batch.chosen_token_mask, batch.rejected_token_mask
        pc, pr = ld_sequence_logps(batch.chosen_token_logps, batch.rejected_token_logps, *masks, alpha)
        changes = dict(policy_chosen_logps=pc, policy_rejected_logps=pr)
        if self._with_reference(entry, hps):
            _require(batch, LD_REF_INPUTS, "ld_alpha with ld_apply_to_reference=True")
            rc, rr = ld_sequence_logps(batch.ref_chosen_token_logps, batch.ref_rejected_token_logps, *masks, alpha)
            changes.update(ref_chosen_logps=rc, ref_rejected_logps=rr)
        return dataclasses.replace(batch, **changes)


class Weighting(Modifier):
    name = "wpo"
    title = "WPO"
    paper = "WPO: Enhancing RLHF with Weighted Preference Optimization"
    hyperparameters = (params.USE_WEIGHTING,)
    inputs = WPO_INPUTS
    doc = (
        "- **`use_weighting`** (WPO, *{paper}*): each pair's loss is multiplied by "
        "min(1, exp(lw_w + lw_l)), lw = mean_t[log p(y_t) − log Σ_v p(v)²], computed without "
        "gradient from the policy's per-token inputs. The clamp at 1 follows TRL's "
        "implementation. Not available for {excluded}. Helper: `wpo_weights(...)`."
    )

    def active(self, hps):
        return bool(hps.get("use_weighting"))

    def reads(self, entry, hps):
        return WPO_INPUTS if self.active(hps) else frozenset()

    def prepare(self, entry, batch, hps):
        if self.active(hps):
            _require(batch, WPO_INPUTS, "use_weighting=True (WPO)")
        return batch

    def finish(self, entry, batch, hps, out):
        if not self.active(hps):
            return out
        weights = wpo_weights(
            batch.chosen_token_logps,
            batch.rejected_token_logps,
            batch.chosen_token_mask,
            batch.rejected_token_mask,
            batch.chosen_token_log_sumsq,
            batch.rejected_token_log_sumsq,
        )
        return out.scaled(weights)


F_DIVERGENCE = FDivergence()
LD_DPO = LengthDesensitization()
WPO = Weighting()
ALL = (F_DIVERGENCE, LD_DPO, WPO)  # the order they apply in
NO_F_DIVERGENCE = (LD_DPO, WPO)
LD_ONLY = (LD_DPO,)
