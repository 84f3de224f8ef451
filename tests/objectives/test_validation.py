"""The functional entry points check every argument into the typed batch: shapes, types,
lengths, labels, scalars, masks; each refusal names the objective and the argument, and what
is accepted goes through unchanged (values by hand)."""

import math

import pytest
import torch

from prefalign.objectives import compute, compute_listwise, compute_unpaired

from .hand import logsig, sig, t

PW, PL, RW, RL = t(-1.0, -2.0), t(-3.0, -4.0), t(-1.5, -2.0), t(-3.0, -3.5)


def dpo_by_hand(beta=0.1):
    return [-logsig(beta * ((pw - rw) - (pl - rl))) for pw, pl, rw, rl in zip(PW.tolist(), PL.tolist(),
                                                                           RW.tolist(), RL.tolist())]


def close(out, expected, tol=1e-12):
    assert out.tolist() == pytest.approx(expected, rel=tol, abs=tol)


def test_python_numbers_and_lists_are_accepted_as_tensors():
    # a list first is torch's default float32; later lists take the first tensor's dtype
    close(compute("sigmoid", [-1.0, -2.0], PL.tolist(), RW.tolist(), RL.tolist()), dpo_by_hand(), tol=1e-6)
    out = compute("sigmoid", PW, PL.tolist(), RW, RL.tolist())
    assert out.dtype == torch.float64
    close(out, dpo_by_hand())


def test_a_value_that_is_not_a_tensor_is_named():
    with pytest.raises(ValueError, match=r"'sigmoid': policy_rejected_logps must be a tensor, got object"):
        compute("sigmoid", PW, object(), RW, RL)


def test_summed_log_probs_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"'sigmoid': policy_chosen_logps must be Tensor\[batch\].*\(2, 1\)"):
        compute("sigmoid", PW[:, None], PL, RW, RL)
    with pytest.raises(ValueError, match=r"policy_rejected_logps has shape \(3,\), expected \(2,\)"):
        compute("sigmoid", PW, t(1.0, 2.0, 3.0), RW, RL)
    with pytest.raises(ValueError, match=r"ref_rejected_logps has shape \(1,\), expected \(2,\)"):
        compute("sigmoid", PW, PL, RW, t(1.0))


def test_lengths_are_checked_and_taken_from_the_masks():
    ok = torch.tensor([2, 3])
    with pytest.raises(ValueError, match=r"'simpo': rejected_lengths must be >= 1.*rows \[0\]"):
        compute("simpo", PW, PL, chosen_lengths=ok, rejected_lengths=torch.tensor([-1, 2]))
    with pytest.raises(ValueError, match=r"chosen_lengths has shape \(3,\), expected \(2,\)"):
        compute("simpo", PW, PL, chosen_lengths=torch.tensor([1, 2, 3]), rejected_lengths=ok)
    # lengths from the masks when not passed (LD-DPO with alpha 1 reads only the sums)
    cm = torch.tensor([[True, True, False], [True, True, True]])
    rm = torch.tensor([[True, False, False], [True, True, False]])
    tok = torch.zeros(2, 3, dtype=torch.float64)
    out = compute("simpo", PW, PL, ld_alpha=0.5, chosen_token_logps=tok + PW[:, None] / 2 * cm,
                  rejected_token_logps=tok + PL[:, None] * rm / rm.sum(-1, keepdim=True), chosen_token_mask=cm,
                  rejected_token_mask=rm)
    # rebuilt sums: chosen = [−1 (2 tokens, within the shorter 1: −0.5 + 0.5·−0.5), …]
    c = [-0.5 + 0.5 * -0.5, -1.0 + -1.0 + 0.5 * -1.0]
    r = [-3.0, -2.0 + -2.0]
    lw, ll = [2, 3], [1, 2]
    close(out, [-logsig(2.0 * (a / n - b / m) - 1.0) for a, b, n, m in zip(c, r, lw, ll)])


def test_scalar_and_per_example_inputs_are_checked():
    with pytest.raises(ValueError, match=r"'bco_pair': delta must be a scalar \(one number\), got shape \(2,\)"):
        compute("bco_pair", PW, PL, RW, RL, delta=t(0.1, 0.2))
    with pytest.raises(ValueError, match=r"margin has shape \(3,\), expected \(2,\)"):
        compute("odpo", PW, PL, RW, RL, margin=t(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"chosen_token_logps must be \[batch, T\] with batch = 2, got \(3, 4\)"):
        compute("sigmoid", PW, PL, RW, RL, ld_alpha=0.5, chosen_token_logps=torch.zeros(3, 4))
    # a Python number is a scalar input; a one-element tensor too
    beta = 0.1
    rw, rl = [x - y for x, y in zip(PW.tolist(), RW.tolist())], [x - y for x, y in zip(PL.tolist(), RL.tolist())]
    expected = [-logsig(beta * a - 0.3) - logsig(-(beta * b - 0.3)) for a, b in zip(rw, rl)]
    close(compute("bco_pair", PW, PL, RW, RL, delta=0.3), expected)
    close(compute("bco_pair", PW, PL, RW, RL, delta=t(0.3)), expected)
    # None inputs are ignored (the optional input is absent)
    close(compute("bco_pair", PW, PL, RW, RL, delta=None), [-logsig(beta * a) - logsig(-beta * b) for a, b in zip(rw, rl)])


def test_unknown_input_lists_what_is_accepted():
    with pytest.raises(ValueError, match=r"'odpo'.*unknown hyperparameter or input 'margins'.*Did you mean 'margin'"
                                         r".*extra inputs: .*margin"):
        compute("odpo", PW, PL, RW, RL, margins=t(1.0, 1.0))
    with pytest.raises(ValueError, match=r"'sigmoid'.*Hyperparameters: beta, f_alpha_convention"):
        compute("sigmoid", PW, PL, RW, RL, bogus=1)


def test_reference_free_objectives_ignore_reference_arguments():
    lengths = dict(chosen_lengths=torch.tensor([2, 4]), rejected_lengths=torch.tensor([3, 1]))
    a = compute("simpo", PW, PL, **lengths)
    b = compute("simpo", PW, PL, RW * 100, RL * 100, **lengths)
    assert a.tolist() == b.tolist()


def test_unpaired_checks():
    labels = torch.tensor([True, False])
    with pytest.raises(ValueError, match=r"'kto': policy_logps must be Tensor\[batch\]"):
        compute_unpaired("kto", PW[:, None], labels, RW, kl=0.0)
    with pytest.raises(ValueError, match=r"'kto': needs reference-model log-probs: pass ref_logps"):
        compute_unpaired("kto", PW, labels, kl=0.0)
    with pytest.raises(ValueError, match=r"ref_logps has shape \(1,\), expected \(2,\)"):
        compute_unpaired("kto", PW, labels, t(1.0), kl=0.0)
    with pytest.raises(ValueError, match=r"labels has shape \(3,\), expected \(2,\)"):
        compute_unpaired("kto", PW, torch.tensor([True, False, True]), RW, kl=0.0)
    with pytest.raises(ValueError, match=r"labels must be bool.*int64"):
        compute_unpaired("kto", PW, torch.tensor([0, 2]), RW, kl=0.0)
    with pytest.raises(ValueError, match=r"kl_logps and ref_kl_logps must have the same shape"):
        compute_unpaired("kto", PW, labels, RW, kl_logps=t(1.0, 2.0), ref_kl_logps=t(1.0))
    with pytest.raises(ValueError, match=r"'sft': lengths must be >= 1.*rows \[1\]"):
        compute_unpaired("sft", PW, None, lengths=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match=r"'sft': needs response lengths"):
        compute_unpaired("sft", PW, None)
    with pytest.raises(ValueError, match=r"'sft'.*rows \[1\] are labelled undesirable"):
        compute_unpaired("sft", PW, labels, lengths=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"'plackett_luce': is a listwise objective: call prefalign.objectives.compute_listwise"):
        compute_unpaired("plackett_luce", PW, labels)
    # 0/1 integer labels are read as bools; python lists too
    rho = [x - y for x, y in zip(PW.tolist(), RW.tolist())]
    expected = [1 - sig(0.1 * rho[0]), sig(0.1 * rho[1])]
    close(compute_unpaired("apo_zero_unpaired", PW, torch.tensor([1, 0]), RW), expected)
    close(compute_unpaired("apo_zero_unpaired", PW, [True, False], RW), expected)
    # npo with labels None: all undesirable
    close(compute_unpaired("npo", PW, None, RW), [2 / 0.1 * math.log1p(math.exp(0.1 * r)) for r in rho])


def test_listwise_checks():
    pol, ref = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    scores = t(1.0, 0.0, 0.5, 0.2, 0.3, 0.1).view(2, 3)
    with pytest.raises(ValueError, match=r"'plackett_luce': policy_logps must be Tensor\[batch, K\]"):
        compute_listwise("pl", PW, ref, scores=scores)
    with pytest.raises(ValueError, match=r"'plackett_luce': needs reference-model log-probs: pass ref_logps"):
        compute_listwise("pl", pol, scores=scores)
    with pytest.raises(ValueError, match=r"ref_logps has shape \(2, 2\), expected \(2, 3\)"):
        compute_listwise("pl", pol, ref[:, :2], scores=scores)
    with pytest.raises(ValueError, match=r"scores has shape \(2, 2\), expected \(2, 3\)"):
        compute_listwise("pl", pol, ref, scores=scores[:, :2])
    with pytest.raises(ValueError, match=r"mask has shape \(2, 2\), expected \(2, 3\)"):
        compute_listwise("pl", pol, ref, scores=scores, mask=torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"lengths has shape \(2, 2\), expected \(2, 3\)"):
        compute_listwise("pl", pol, ref, scores=scores, lengths=torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"lengths must be >= 1 for every present"):
        compute_listwise("pl", pol, ref, scores=scores, lengths=torch.tensor([[1, 0, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match=r"length_normalize=True needs lengths"):
        compute_listwise("pl", pol, ref, scores=scores, length_normalize=True)
    with pytest.raises(ValueError, match=r"'sigmoid': is a pairwise objective: call prefalign.objectives.compute$"):
        compute_listwise("sigmoid", pol, ref, scores=scores)
    with pytest.raises(ValueError, match=r"'kto': is a unpaired objective: call prefalign.objectives.compute_unpaired"):
        compute_listwise("kto", pol, ref, scores=scores)
    # a length of 0 where the mask is False is fine (padding); the normalized loss ignores it
    lengths = torch.tensor([[2, 1, 4], [1, 3, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    pol = t(-1.0, -2.0, -3.0, -1.0, -2.0, 0.0).view(2, 3)
    out = compute_listwise("pl", pol, ref, scores=scores, lengths=lengths, mask=mask, length_normalize=True, beta=1.0)
    s1 = [-1.0 / 2, -2.0 / 1, -3.0 / 4]  # ranked by scores: 0, 2, 1
    s2 = [-1.0 / 1, -2.0 / 3]  # ranked: 1 (0.3) ... scores row 2 = [0.2, 0.3, (pad)] -> order 1, 0

    def pl(seq):
        return -sum(seq[k] - math.log(sum(math.exp(x) for x in seq[k:])) for k in range(len(seq)))

    close(out, [pl([s1[0], s1[2], s1[1]]), pl([s2[1], s2[0]])])


def test_the_pairwise_entry_point_runs_sft_on_the_chosen_responses():
    lengths = torch.tensor([2, 4])
    close(compute("sft", PW, PL, chosen_lengths=lengths), [3.0 / 6, 3.0 / 6])
    close(compute("sft", PW, PL, chosen_lengths=lengths, nll_reduction="example"), [0.5, 0.5])
    with pytest.raises(ValueError, match=r"'lipo_lambda': is a listwise objective: call prefalign.objectives.compute_listwise"):
        compute("lipo", PW, PL, RW, RL)
