"""The typed path: what each entry reads, hyperparameters resolved once, the implicit rewards
every objective returns, and the metrics computed from them (by hand)."""

import math

import pytest
import torch

from prefalign import objectives as O
from prefalign.objectives import get

from .hand import t

PW, PL, RW, RL = t(-3.0, -5.2, -1.9), t(-4.3, -6.6, -2.8), t(-3.5, -5.0, -3.0), t(-4.0, -7.0, -3.0)
LW, LL = torch.tensor([4, 7, 2]), torch.tensor([5, 3, 9])
RHO_W, RHO_L = [0.5, -0.2, 1.1], [-0.3, 0.4, 0.2]


def pairs(**fields):
    return O.PairwiseBatch(PW, PL, RW, RL, LW, LL, **fields)


def approx(tensor, values, tol=1e-12):
    assert tensor.tolist() == pytest.approx(values, rel=tol, abs=tol)


# ---- what an entry reads, and its resolved hyperparameters ----------------------------------------
LD = {"chosen_token_logps", "rejected_token_logps", "chosen_token_mask", "rejected_token_mask"}
LD_REF = {"ref_chosen_token_logps", "ref_rejected_token_logps"}
SUMSQ = {"chosen_token_log_sumsq", "rejected_token_log_sumsq"}
BASE = {"policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"}
REF = {"ref_chosen_logps", "ref_rejected_logps"}


def test_reads_follow_the_hyperparameters():
    dpo = get("sigmoid")
    assert dpo.reads() == BASE | REF
    assert dpo.reads({"ld_alpha": 0.5}) == BASE | REF | LD | LD_REF
    assert dpo.reads({"ld_alpha": 0.5, "ld_apply_to_reference": False}) == BASE | REF | LD
    assert dpo.reads({"ld_alpha": 1.0}) == BASE | REF  # α = 1 is the plain sums
    assert dpo.reads({"use_weighting": True}) == BASE | REF | LD | SUMSQ
    assert get("simpo").reads({"ld_alpha": 0.5}) == BASE | LD  # no reference to rebuild
    assert get("wpo").reads() == BASE | REF | LD | SUMSQ
    assert get("ld_dpo").reads() == BASE | REF | LD | LD_REF
    assert get("tdpo2").reads() == BASE | REF | {"chosen_seq_kl", "rejected_seq_kl"}
    assert get("odpo").reads() == BASE | REF | {"margin"}
    assert get("beta_dpo").reads() == BASE | REF | {"gap_mean", "gap_std"}
    assert get("kto").reads() == {"policy_logps", "labels", "lengths", "ref_logps", "kl", "kl_logps", "ref_kl_logps"}
    assert get("sft").reads() == {"policy_logps", "labels", "lengths", "step_mean_length"}
    assert get("lipo").reads() == {"policy_logps", "ref_logps", "scores", "lengths", "mask"}


def test_resolve_fills_defaults_checks_values_and_names_unknown_ones():
    spec = get("simpo")
    resolved = spec.resolve({"beta": 3})
    assert resolved["beta"] == 3.0 and isinstance(resolved["beta"], float)
    assert resolved["simpo_gamma"] == 1.0 and resolved["ld_alpha"] is None and resolved["use_weighting"] is False
    assert set(resolved) == {h.name for h in spec.hyperparameters}
    assert spec.resolve(resolved) == resolved
    with pytest.raises(ValueError, match=r"'simpo': unknown hyperparameter 'simpo_gama'.*Did you mean 'simpo_gamma'"):
        spec.resolve({"simpo_gama": 1.0})
    with pytest.raises(ValueError, match=r"beta=-1 is out of range"):
        spec.resolve({"beta": -1.0})


def test_modifiers_are_declared_once_and_composed_by_the_registry():
    from prefalign.objectives import modifiers

    for o in O.available():
        names = [h.name for h in o.hyperparameters]
        assert len(names) == len(set(names)), o.name
        mods = [h.name for m in o.modifiers for h in m.hyperparameters]
        assert names[len(names) - len(mods):] == mods or o.name in ("wpo", "ld_dpo"), o.name  # appended last
    assert get("aot").modifiers == (modifiers.LD_DPO,)
    assert get("apo_zero").modifiers == (modifiers.LD_DPO, modifiers.WPO)
    assert get("sigmoid").modifiers == modifiers.ALL
    assert "f_divergence_type" not in get("apo_zero").defaults
    assert get("wpo").defaults["use_weighting"] is True and get("ld_dpo").defaults["ld_alpha"] == 0.5


def test_running_statistics_declared_per_entry():
    assert [s.name for s in get("bco").running_stats()] == ["reward"]
    assert get("bco_pair").running_stats() == ()
    assert [s.name for s in get("bco_pair").running_stats({"reward_shift": "running_mean"})] == ["reward"]
    assert [(s.name, s.momentum) for s in get("beta_dpo").running_stats()] == [("gap", 0.9)]
    assert all(not o.running_stats() for o in O.available() if o.name not in ("bco", "beta_dpo"))


# ---- the implicit rewards each objective returns --------------------------------------------------
@pytest.mark.parametrize("name", [o.name for o in O.available() if o.shape == "pairwise" and o.needs_reference])
def test_pairwise_objectives_with_a_reference_return_beta_times_the_log_ratios(name):
    kw = {}
    if name in ("odpo", "modpo"):
        kw["margin"] = t(0.1, 0.2, 0.3)
    if name in ("soft_sigmoid", "sppo_soft"):
        kw["strength"] = t(0.9, 0.5, 0.2)
    if name in ("tdpo1", "tdpo2"):
        kw.update(chosen_seq_kl=t(0.1, 0.2, 0.3), rejected_seq_kl=t(0.3, 0.1, 0.0))
    if name == "mrpo":  # further references equal to the main one: the combined one is it
        kw.update(ref_extra_chosen_logps=RW[:, None], ref_extra_rejected_logps=RL[:, None])
    if name == "wpo":
        return  # needs token inputs; its rewards are sigmoid's (the weights scale only the loss)
    beta = 0.3
    out = O.run(name, pairs(**kw), {"beta": beta, **({"ld_alpha": 1.0} if name == "ld_dpo" else {})})
    approx(out.chosen_rewards, [beta * r for r in RHO_W])
    approx(out.rejected_rewards, [beta * r for r in RHO_L])
    assert not out.chosen_rewards.requires_grad and out.rewards is None


@pytest.mark.parametrize("name,per_token", [("simpo", True), ("orpo", True), ("asft", True), ("cpo", False)])
def test_reference_free_rewards_are_trls(name, per_token):
    beta = 0.4
    out = O.run(name, O.PairwiseBatch(PW, PL, chosen_lengths=LW, rejected_lengths=LL), {"beta": beta})
    pw, pl, lw, ll = PW.tolist(), PL.tolist(), LW.tolist(), LL.tolist()
    approx(out.chosen_rewards, [beta * p / (n if per_token else 1) for p, n in zip(pw, lw)])
    approx(out.rejected_rewards, [beta * p / (n if per_token else 1) for p, n in zip(pl, ll)])


def test_unpaired_and_listwise_rewards():
    labels = torch.tensor([True, False, True])
    out = O.run("kto", O.UnpairedBatch(PW, labels, RW, LW, kl=t(0.2)), {"beta": 0.5})
    approx(out.rewards, [0.5 * r for r in RHO_W])
    assert O.run("sft", O.UnpairedBatch(PW, torch.ones(3, dtype=torch.bool), lengths=LW), {}).rewards is None
    pol, ref = torch.stack([PW, PL], 1), torch.stack([RW, RL], 1)
    batch = O.ListwiseBatch(pol, ref, t(1.0, 0.0).expand(3, 2), torch.stack([LW, LL], 1), torch.ones(3, 2, dtype=torch.bool))
    for name in ("lipo", "plackett_luce"):
        out = O.run(name, batch, {"beta": 0.5})
        approx(out.rewards[:, 0], [0.5 * r for r in RHO_W])
        approx(out.rewards[:, 1], [0.5 * r for r in RHO_L])


# ---- the logged metrics, in one place ---------------------------------------------------------------
def test_pairwise_metrics_by_hand():
    beta = 0.5
    batch = pairs(chosen_seq_kl=t(0.1, 0.2, 0.3), rejected_seq_kl=t(0.4, 0.0, 0.6))
    m = O.batch_metrics(batch, O.run("tdpo1", batch, {"beta": beta}))
    approx(m["logps/chosen"], PW.tolist())
    approx(m["logps/rejected"], PL.tolist())
    approx(m["rewards/chosen"], [beta * r for r in RHO_W])
    approx(m["rewards/rejected"], [beta * r for r in RHO_L])
    approx(m["rewards/margin"], [beta * (w - lo) for w, lo in zip(RHO_W, RHO_L)])
    approx(m["rewards/accuracy"], [1.0, 0.0, 1.0])
    approx(m["kl/chosen"], [0.1, 0.2, 0.3])
    approx(m["kl/rejected"], [0.4, 0.0, 0.6])
    assert "kl/chosen" not in O.batch_metrics(pairs(), O.run("sigmoid", pairs(), {}))


def test_reward_summaries_agree_with_the_per_example_values():
    rc, rr = t(0.5, -0.1, 0.3, 0.0), t(0.2, 0.4, -0.3, 0.0)
    means = O.reward_margin_metrics(rc, rr)
    assert means == pytest.approx({"rewards/chosen": 0.175, "rewards/rejected": 0.075, "rewards/margin": 0.1,
                                   "rewards/accuracy": 0.5})
    from prefalign.eval.metrics import implicit_reward_metrics

    assert implicit_reward_metrics(PW, PL, RW, RL, beta=0.5) == pytest.approx(
        O.pairwise_reward_metrics(PW, PL, RW, RL, beta=0.5))
    assert O.pairwise_reward_metrics(PW, PL, RW, RL)["rewards/chosen"] == pytest.approx(0.1 * sum(RHO_W) / 3)
    approx(O.implicit_rewards(PW, RW), [0.1 * r for r in RHO_W])


def test_listwise_metrics_pick_the_best_and_worst_scored():
    pol = t(-1.0, -2.0, -3.0, -4.0, -5.0, -6.0).view(2, 3)
    ref = t(-1.5, -1.0, -3.5, -4.5, -5.5, 0.0).view(2, 3)
    scores = t(0.5, 2.0, 1.0, 3.0, 0.0, 9.0).view(2, 3)  # row 2's last entry is padding
    mask = torch.tensor([[True, True, True], [True, True, False]])
    lengths = torch.tensor([[2, 3, 4], [5, 6, 1]])
    batch = O.ListwiseBatch(pol, ref, scores, lengths, mask)
    m = O.batch_metrics(batch, O.run("plackett_luce", batch, {"beta": 0.5}))
    approx(m["logps/chosen"], [-2.0, -4.0])
    approx(m["logps/rejected"], [-1.0, -5.0])
    approx(m["rewards/chosen"], [0.5 * (-2.0 + 1.0), 0.5 * (-4.0 + 4.5)])
    approx(m["rewards/rejected"], [0.5 * (-1.0 + 1.5), 0.5 * (-5.0 + 5.5)])
    approx(m["rewards/accuracy"], [0.0, 0.0])


def test_unpaired_metrics_split_the_rewards_by_label():
    labels = torch.tensor([True, False, True])
    batch = O.UnpairedBatch(PW, labels, RW, LW, kl=t(0.0))
    m = O.batch_metrics(batch, O.run("kto", batch, {"beta": 0.5}))
    approx(m["logps/completion"], PW.tolist())
    approx(m["logps/per_token"], [p / n for p, n in zip(PW.tolist(), LW.tolist())])
    d, u = m["rewards/desirable"].tolist(), m["rewards/undesirable"].tolist()
    assert d[0] == pytest.approx(0.25) and math.isnan(d[1]) and d[2] == pytest.approx(0.55)
    assert math.isnan(u[0]) and u[1] == pytest.approx(-0.1) and math.isnan(u[2])
    d, u = m["logps/desirable"].tolist(), m["logps/undesirable"].tolist()
    assert [d[0], d[2]] == pytest.approx([PW[0].item(), PW[2].item()]) and math.isnan(d[1])
    assert math.isnan(u[0]) and u[1] == pytest.approx(PW[1].item()) and math.isnan(u[2])
    sft = O.UnpairedBatch(PW, torch.ones(3, dtype=torch.bool), lengths=LW)
    assert set(O.batch_metrics(sft, O.run("sft", sft, {}))) == {"logps/completion", "logps/per_token"}


# ---- the trainer's state -------------------------------------------------------------------------
def test_state_fills_only_what_the_batch_does_not_have():
    spec = get("beta_dpo")
    state = O.ObjectiveState(spec)
    state.observe(pairs())
    filled = state.fill(pairs(gap_mean=t(7.0)))
    assert filled.gap_mean.item() == 7.0 and filled.gap_std.item() == pytest.approx(state.moments["gap"].std)
    assert O.ObjectiveState(spec).fill(pairs()).gap_mean is None  # nothing seen yet: the batch's own


def test_a_process_without_examples_still_takes_part_in_the_reduction():
    calls = []

    def reduce(x):
        calls.append(x.clone())
        return x

    state = O.ObjectiveState(get("bco"))
    assert state.observe(None, reduce) is None
    assert len(calls) == 2 and calls[0].tolist() == [0.0, 0.0] and calls[1].tolist() == [0.0]
    assert state.moments["reward"].count == 0
    calls.clear()
    state.observe(O.UnpairedBatch(PW, torch.tensor([True, False, True]), RW, LW), reduce)
    assert len(calls) == 2 and calls[0].tolist() == pytest.approx([3.0, 0.1 * sum(RHO_W)])
    assert state.moments["reward"].count == 3


def test_inactive_state_changes_nothing():
    state = O.ObjectiveState(get("sigmoid"))
    assert not state.active and state.state_dict() == {}
    batch = pairs()
    assert O.run("sigmoid", batch, {}, state=state).losses.tolist() == O.run("sigmoid", batch, {}).losses.tolist()


def test_table_shows_own_hyperparameters_and_non_default_modifiers():
    text = O.table_text()
    row = lambda name: next(line for line in text.splitlines() if line.startswith(name + " "))  # noqa: E731
    assert "use_weighting=True" in row("wpo") and "ld_alpha=0.5" in row("ld_dpo (ldpo)")
    assert "use_weighting" not in row("sigmoid (dpo, f_dpo)") and "ld_alpha" not in row("sigmoid (dpo, f_dpo)")
    assert "reward_shift='none'" in row("bco_pair")
    assert "not for aot, aot_unpaired, beta_dpo, mrpo, tdpo1, tdpo2" in text
