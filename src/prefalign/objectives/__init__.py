"""Preference objectives: pure functions from sequence log-probs to per-example losses.

Entry points (all return an unreduced Tensor[batch]; take ``.mean()`` yourself)::

    compute(name, policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None,
            ref_rejected_logps=None, chosen_lengths=None, rejected_lengths=None, **kwargs)
    compute_unpaired(name, policy_logps, labels, ref_logps=None, lengths=None, **kwargs)
    compute_listwise(name, policy_logps, ref_logps=None, scores=None, lengths=None, mask=None, **kwargs)
    available() -> list[Objective];  get(name) -> Objective;  table_text() -> str

and, for a trainer, the typed path they are built on::

    run(name_or_entry, batch, hyperparameters, state=None) -> ObjectiveOutput
    PairwiseBatch / UnpairedBatch / ListwiseBatch  (one typed batch per data shape)
    ObjectiveState(entry, hyperparameters)         (running statistics across steps)
    batch_metrics(batch, output) -> dict           (the logged reward metrics)

Log-probs are summed over response tokens; lengths count response tokens. ``kwargs`` holds
the objective's hyperparameters (``get(name).defaults``) and its extra inputs
(``get(name).inputs`` must be passed, ``get(name).optional_inputs`` may be). Anything else
raises a ValueError naming the objective. Names follow TRL's ``loss_type`` with TRL's
semantics; readable aliases also work (``dpo`` = ``sigmoid``, ``slic`` = ``hinge``, …).

Extra inputs, by keyword (B = batch, T = padded response length, K = list size):

=========================  ==============  ===========================================================
keyword                    shape           used by
=========================  ==============  ===========================================================
margin                     [B], >= 0       odpo (preference strength, e.g. score_w − score_l); modpo (the
                                           other dimensions' reward gap, any sign)
strength                   [B], in [0, 1]  soft_sigmoid (p(chosen ≻ rejected): a judge's, a jury's)
gap_mean, gap_std          scalar          beta_dpo, optional (running mean/std of h = ρ_w − ρ_l)
delta                      scalar          bco, bco_pair (optional; the running mean reward; see the entries)
chosen_seq_kl,             [B]             tdpo1 / tdpo2: Σ_t KL(π_ref(·|x,y_<t) ‖ π(·|x,y_<t)) per
rejected_seq_kl                            response, with gradient through π (see sequence_kl)
chosen_token_logps,        [B, T]          policy per-token log-probs: LD-DPO (``ld_alpha``) and WPO
rejected_token_logps                       (``use_weighting``), on every pairwise objective
chosen_token_mask,         [B, T] bool     True on response tokens (same layout as the token log-probs);
rejected_token_mask                        also supply lengths when chosen/rejected_lengths are None
ref_chosen_token_logps,    [B, T]          reference per-token log-probs: LD-DPO with a reference
ref_rejected_token_logps                   (unless ld_apply_to_reference=False)
chosen_token_log_sumsq,    [B, T]          WPO: log Σ_v p(v | x, y_<t)² under the policy (see
rejected_token_log_sumsq                   log_sum_sq_probs); no gradient needed
kl_logps, ref_kl_logps     [n]             kto: policy / reference log-probs of mismatched
                                           prompt-completion pairs (completions of other prompts)
kl                         scalar          kto: the KL reference point given directly (instead of the above)
labels (argument)          [B] bool        unpaired objectives; True = desirable
scores, mask (arguments)   [B, K]          listwise objectives: label scores (higher = better), validity
=========================  ==============  ===========================================================

Helpers for the engine and trainer: :func:`implicit_rewards`, :func:`pairwise_reward_metrics`,
:func:`ld_sequence_logps`, :func:`ld_token_weights`, :func:`wpo_weights`,
:func:`log_sum_sq_probs`, :func:`sequence_kl`, :func:`beta_dpo_selection`,
:class:`RunningMoments` (BCO's δ, β-DPO's running gap statistics). See docs/objectives.md.
"""

from .batches import ListwiseBatch, ObjectiveOutput, PairwiseBatch, UnpairedBatch
from .dispatch import compute, compute_listwise, compute_unpaired, run
from .metrics import batch_metrics, implicit_rewards, pairwise_reward_metrics, reward_margin_metrics
from .pairwise_variants import beta_dpo_selection
from .registry import Hyperparameter, Objective, available, get, table_text
from .state import ObjectiveState, RunningMoments, RunningStat
# the built-in objectives register themselves when their modules load: here, once, so the
# registry never imports the modules that import it
from . import listwise, multi_objective, multi_reference, pairwise, reference_free, single_trajectory, soft_labels, tdpo, unpaired  # noqa: E402,F401,E501
from . import mixture  # noqa: E402,F401  (mixtures of the above, built by name on demand)
from .token_level import ld_sequence_logps, ld_token_weights, log_sum_sq_probs, sequence_kl, wpo_log_weights, wpo_weights
from .unpaired import kto_reference_point

__all__ = [
    "Hyperparameter",
    "ListwiseBatch",
    "Objective",
    "ObjectiveOutput",
    "ObjectiveState",
    "PairwiseBatch",
    "RunningMoments",
    "RunningStat",
    "UnpairedBatch",
    "available",
    "batch_metrics",
    "beta_dpo_selection",
    "compute",
    "compute_listwise",
    "compute_unpaired",
    "get",
    "implicit_rewards",
    "kto_reference_point",
    "ld_sequence_logps",
    "ld_token_weights",
    "log_sum_sq_probs",
    "pairwise_reward_metrics",
    "reward_margin_metrics",
    "run",
    "sequence_kl",
    "table_text",
    "wpo_log_weights",
    "wpo_weights",
]
