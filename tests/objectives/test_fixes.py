"""Issue 13's fixes at the objective level, each against values computed by hand with `math`:
ODPO's paper offset, f-DPO's paper α convention, BCO's and β-DPO's running statistics (kept by
an ObjectiveState across batches and processes, and restored from its JSON state)."""

import json
import math
import threading

import pytest
import torch

from prefalign import objectives as O
from prefalign.objectives import RunningMoments, compute, get

from .hand import close, logsig, t

# three pairs: ρ_w = [0.5, -0.2, 1.1], ρ_l = [-0.3, 0.4, 0.2]
PW, RW = t(-3.0, -5.2, -1.9), t(-3.5, -5.0, -3.0)
PL, RL = t(-4.3, -6.6, -2.8), t(-4.0, -7.0, -3.0)
RHO_W, RHO_L = [0.5, -0.2, 1.1], [-0.3, 0.4, 0.2]


def test_odpo_paper_offset_is_alpha_log_margin():
    margin, beta, alpha = [2.0, 0.5, 3.0], 0.4, 0.7
    out = compute("odpo", PW, PL, RW, RL, beta=beta, margin=t(*margin), offset_scale=alpha, offset_fn="log")
    close(out, [-logsig(beta * (w - lo) - alpha * math.log(m)) for w, lo, m in zip(RHO_W, RHO_L, margin)])


def test_odpo_paper_offset_refuses_a_margin_that_is_not_positive():
    with pytest.raises(ValueError, match=r"'odpo'.*margin must be > 0.*offset_fn='log'.*rows \[1\]"):
        compute("odpo", PW, PL, RW, RL, margin=t(1.0, 0.0, 2.0), offset_fn="log")


@pytest.mark.parametrize("a", [0.2, 0.5, 0.9])
def test_f_dpo_paper_alpha_convention(a):
    """The paper: f′(u) = (1 − u^−α)/α, so s = (1 − e^{−αρ})/α; TRL's α is the paper's 1 − α."""
    beta = 0.3

    def s(rho):
        return (1.0 - math.exp(-a * rho)) / a

    out = compute("sigmoid", PW, PL, RW, RL, beta=beta, f_divergence_type="alpha_divergence",
                  f_alpha_divergence_coef=a, f_alpha_convention="paper")
    close(out, [-logsig(beta * (s(w) - s(lo))) for w, lo in zip(RHO_W, RHO_L)])
    trl = compute("sigmoid", PW, PL, RW, RL, beta=beta, f_divergence_type="alpha_divergence",
                  f_alpha_divergence_coef=1.0 - a)
    close(trl, out.tolist())
    if a != 0.5:  # only α = 0.5 reads the same in both conventions
        same = compute("sigmoid", PW, PL, RW, RL, beta=beta, f_divergence_type="alpha_divergence",
                       f_alpha_divergence_coef=a)
        assert not torch.allclose(same, out)


def _unpaired(policy, ref, labels):
    return O.UnpairedBatch(t(*policy), torch.tensor(labels), t(*ref), torch.tensor([3] * len(policy)))


def test_bco_delta_is_the_running_mean_over_batches():
    beta = 0.5
    spec = get("bco")
    state = O.ObjectiveState(spec, {"beta": beta})
    first = _unpaired([-1.0, -2.0], [-1.4, -1.0], [True, False])  # ρ = [0.4, -1.0]
    second = _unpaired([-3.0, -2.5, -1.0], [-3.2, -2.0, -1.3], [True, False, True])  # ρ = [0.2, -0.5, 0.3]
    O.run(spec, first, {"beta": beta}, state=state)
    out = O.run(spec, second, {"beta": beta}, state=state)
    rewards = [beta * r for r in (0.4, -1.0, 0.2, -0.5, 0.3)]
    delta = sum(rewards) / len(rewards)  # both batches, not the second batch's own mean
    r2 = [beta * r for r in (0.2, -0.5, 0.3)]
    close(out.losses, [-logsig(r2[0] - delta), -logsig(-(r2[1] - delta)), -logsig(r2[2] - delta)])
    assert state.moments["reward"].count == 5
    # evaluation fills δ without moving it
    before = state.state_dict()
    O.run(spec, first, {"beta": beta}, state=state, update_state=False)
    assert state.state_dict() == before


def _pairs(pw, pl, rw, rl):
    return O.PairwiseBatch(t(*pw), t(*pl), t(*rw), t(*rl), torch.tensor([3] * len(pw)), torch.tensor([4] * len(pw)))


def test_bco_pair_running_mean_shift():
    beta = 0.5
    spec = get("bco_pair")
    hps = {"beta": beta, "reward_shift": "running_mean"}
    state = O.ObjectiveState(spec, hps)
    O.run(spec, _pairs([-1.0], [-2.0], [-1.4], [-1.0]), hps, state=state)  # ρ_w 0.4, ρ_l -1.0
    out = O.run(spec, _pairs(list(PW), list(PL), list(RW), list(RL)), hps, state=state)
    rewards = [beta * r for r in (0.4, -1.0, *RHO_W, *RHO_L)]
    delta = sum(rewards) / len(rewards)
    close(out.losses, [-logsig(beta * w - delta) - logsig(-(beta * lo - delta)) for w, lo in zip(RHO_W, RHO_L)])
    # the default (TRL >= 0.29) keeps no statistic and shifts nothing
    assert not O.ObjectiveState(spec, {"beta": beta}).active
    close(compute("bco_pair", PW, PL, RW, RL, beta=beta),
          [-logsig(beta * w) - logsig(-beta * lo) for w, lo in zip(RHO_W, RHO_L)])
    # without a running mean (functional API, no delta=), the batch's own mean reward
    own = sum(beta * r for r in (*RHO_W, *RHO_L)) / 6
    close(compute("bco_pair", PW, PL, RW, RL, beta=beta, reward_shift="running_mean"),
          [-logsig(beta * w - own) - logsig(-(beta * lo - own)) for w, lo in zip(RHO_W, RHO_L)])


def test_beta_dpo_threshold_is_an_ema_of_batch_gaps():
    spec = get("beta_dpo")
    hps = {"beta": 0.1, "beta_dpo_alpha": 0.6, "beta_dpo_filter_ratio": 0.0,
           "beta_dpo_statistics": "first_batch"}
    state = O.ObjectiveState(spec, hps)
    zeros2 = [0.0, 0.0]
    O.run(spec, _pairs([1.0, 3.0], zeros2, zeros2, zeros2), hps, state=state)  # h = [1, 3]: mean 2, std 1
    out = O.run(spec, _pairs(list(PW), list(PL), list(RW), list(RL)), hps, state=state)
    h = [w - lo for w, lo in zip(RHO_W, RHO_L)]  # [0.8, -0.6, 0.9]
    mean2 = sum(h) / 3
    m0 = 0.9 * 2.0 + 0.1 * mean2  # the EMA includes this batch (updated before the loss)
    beta_b = 0.1 * (1 + 0.6 * (mean2 - m0))
    close(out.losses, [-logsig(beta_b * x) for x in h])
    std2 = math.sqrt(sum((x - mean2) ** 2 for x in h) / 3)
    assert state.moments["gap"].std == pytest.approx(0.9 * 1.0 + 0.1 * std2)
    # stateless (the batch's own mean as M_0) the adaptive β is inert: β_b = β
    close(compute("beta_dpo", PW, PL, RW, RL, **hps), [-logsig(0.1 * x) for x in h])


def test_beta_dpo_statistics_by_default_are_the_authors_emas_from_zero():
    """The authors' code starts M_0 and σ at 0 and takes each batch's unbiased std; the old
    default started them at the first batch with the population std (after one batch of
    h = [-4, -1, 2, 3, 6.25]: M_0 0.125 instead of 1.25, σ 0.391 instead of 3.5)."""
    spec = get("beta_dpo")
    hps = {"beta": 0.1, "beta_dpo_alpha": 0.6, "beta_dpo_filter_ratio": 0.0}
    h1 = [-4.0, -1.0, 2.0, 3.0, 6.25]  # mean 1.25, squared deviations 61.25
    zeros = [0.0] * 5
    state = O.ObjectiveState(spec, hps)
    O.run(spec, _pairs(h1, zeros, zeros, zeros), hps, state=state)
    gap = state.moments["gap"]
    assert (gap.mean, gap.std) == (pytest.approx(0.125), pytest.approx(0.1 * math.sqrt(61.25 / 4)))
    out = O.run(spec, _pairs(list(PW), list(PL), list(RW), list(RL)), hps, state=state)
    h = [w - lo for w, lo in zip(RHO_W, RHO_L)]  # [0.8, -0.6, 0.9]
    mean2 = sum(h) / 3
    std2 = math.sqrt(sum((x - mean2) ** 2 for x in h) / 2)  # unbiased
    m0 = 0.9 * 0.125 + 0.1 * mean2
    assert gap.std == pytest.approx(0.9 * 0.1 * math.sqrt(61.25 / 4) + 0.1 * std2)
    beta_b = 0.1 * (1 + 0.6 * (mean2 - m0))
    close(out.losses, [-logsig(beta_b * x) for x in h])
    first = O.ObjectiveState(spec, {**hps, "beta_dpo_statistics": "first_batch"})
    O.run(spec, _pairs(h1, zeros, zeros, zeros), hps, state=first)
    assert (first.moments["gap"].mean, first.moments["gap"].std) == (
        pytest.approx(1.25), pytest.approx(3.5))


def test_objective_state_round_trips_through_json():
    spec = get("beta_dpo")
    state = O.ObjectiveState(spec)
    O.run(spec, _pairs(list(PW), list(PL), list(RW), list(RL)), {}, state=state)
    restored = O.ObjectiveState(spec)
    restored.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert restored.state_dict() == state.state_dict()
    batch = _pairs([-1.0, -2.0, -0.5], [-2.0, -2.5, -3.0], [-1.5, -2.0, -1.0], [-2.0, -2.0, -2.0])
    close(O.run(spec, batch, {}, state=restored).losses, O.run(spec, batch, {}, state=state).losses.tolist())
    with pytest.raises(ValueError, match="no running statistic gap"):
        O.ObjectiveState(spec).load_state_dict({})


def test_update_global_over_two_processes_equals_one_process_with_all_values():
    """Two "processes" (threads) each hold half of a batch; the sums go through an all-reduce."""
    values = [t(0.5, -1.0, 2.0), t(3.0, 0.25)]
    barrier = threading.Barrier(2)
    slots: list = [None, None]

    def reduce_for(rank):
        def reduce(x):
            slots[rank] = x.clone()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total
        return reduce

    for momentum in (None, 0.9):
        results = [RunningMoments(momentum).update(t(1.0)), RunningMoments(momentum).update(t(1.0))]
        threads = [threading.Thread(target=lambda r=r: results[r].update_global(values[r], reduce_for(r)))
                   for r in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        one = RunningMoments(momentum).update(t(1.0)).update(torch.cat(values))
        for r in results:
            assert r.mean == pytest.approx(one.mean) and r.std == pytest.approx(one.std) and r.count == one.count
