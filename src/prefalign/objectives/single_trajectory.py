"""DRO: alignment from single-trajectory feedback, (prompt, response, reward) rows such as
thumbs-up/down, with no pairs (Richemond et al., "Offline Regularised Reinforcement Learning
for Large Language Models Alignment", 2024).

DRO minimises one mean-squared objective over the policy and a value function V,

    L(θ, V) = ½·E[(r(x, y) − V(x) − τ·log π_θ(y|x)/π_ref(y|x))²],

whose minimiser is the KL-regularised optimum: τ·log π*/π_ref = r − V*, V* = τ·log of the
partition function. As the paper's DRO-V does, the two are trained from their own losses with
stop-gradients, so their gradients are L's (the policy's scaled by 1/τ):

    policy:  −sg(r − V(x))·log π_θ(y|x) + (τ/2)·(log π_θ/π_ref)²
    value:   ½·(r − V(x) − τ·sg(log π_θ/π_ref))²

Choices where the paper's text was not at hand, tested and documented: V is a linear head on
the policy's hidden state at the prompt's last token (the paper trains a separate value
network; a head avoids a second model), with its gradient stopped at the head so the value fit
never moves the policy, its own learning rate (``value_lr``: a head that starts at V = 0 would
barely move at a policy's learning rate), not saved with the model; the reward is the data's
``reward`` column, else the label: thumbs-up 1, thumbs-down 0 (another scale: a reward
column).
"""

from __future__ import annotations

from torch import Tensor

from . import params
from .batches import ObjectiveOutput, UnpairedBatch
from .registry import Hyperparameter, objective


def feedback_rewards(b: UnpairedBatch) -> Tensor:
    """r per completion: the batch's ``feedback`` where given, else the label (1 or 0)."""
    if b.feedback is not None:
        return b.feedback.to(b.policy_logps.dtype)
    return b.labels.to(b.policy_logps.dtype)


@objective(
    name="dro",
    aliases=("dro_v",),
    shape="unpaired",
    needs_reference=True,
    paper="Offline Regularised Reinforcement Learning for Large Language Models Alignment",
    formula="½·(r − V(x) − β·ρ)²: policy −sg(r − V)·log π + (β/2)·ρ², value ½·(r − V − β·sg(ρ))²",
    summary="DRO: the mean-squared objective on single-trajectory feedback (one completion and "
            "its reward, e.g. thumbs-up/down) with a learned value baseline V(x) and a KL to "
            "the reference",
    hyperparameters=(
        params.beta(1.0, "τ, the KL regularisation: the optimum has β·ρ = r − V(x)",
                     "0.1-1 (the paper's τ)"),
        Hyperparameter("value_lr", 1e-3, "learning rate of the value head V(x) (its own "
                       "optimizer group; the schedule scales it with the policy's)", "1e-4-1e-2",
                       low=0.0, low_open=True),
    ),
    inputs=frozenset({"values"}),
    optional_inputs=frozenset({"feedback"}),
    notes="Rows are unpaired (prompt, completion, label); a `reward` column, where the data has "
    "one, is each completion's r (every row then needs a finite one); without one r is the "
    "label, 1 for thumbs-up and 0 for thumbs-down. The value is a linear "
    "head on the policy's hidden state predicting the first response token (the prompt's last), "
    "starting at V = 0, trained with value_lr and kept in checkpoints, not in the saved model; "
    "its gradient stops at the head. loss/policy and loss/value are logged beside the loss. "
    "With V fixed at its optimum the policy's gradient is the squared loss's divided by β "
    "(tested).",
)
def dro(b: UnpairedBatch, *, beta: float, value_lr: float) -> ObjectiveOutput:
    """½·(r − V(x) − β·ρ)², as the policy's and the value's own losses.

    A completion rated above what the prompt's value expects gets its likelihood raised, one
    below it lowered, each in proportion to the gap, while (β/2)·ρ² holds the policy near the
    reference; the value learns what the prompt's responses earn on average, net of the
    policy's shift.
    """
    del value_lr  # the trainer's optimizer reads it
    if b.values is None:
        raise ValueError("dro needs each prompt's value V(x) (values=; in training the "
                         "policy's value head)")
    r = feedback_rewards(b)
    v = b.values.to(r.dtype)
    rho = b.logratios()
    policy = -(r - v).detach() * b.policy_logps + 0.5 * beta * rho ** 2
    value = 0.5 * (r - v - beta * rho.detach()) ** 2
    out = b.output(policy + value, beta)
    return ObjectiveOutput(out.losses, rewards=out.rewards,
                           parts={"policy": policy, "value": value})
