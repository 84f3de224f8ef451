"""Bad calls raise ValueErrors that name the objective and say what to do."""

import pytest
import torch

from prefalign.objectives import compute, compute_listwise, compute_unpaired, get

from .hand import t

P = (t(-1.0, -2.0), t(-3.0, -4.0))
R = (t(-1.5, -2.0), t(-3.0, -3.5))


def test_missing_reference_names_objective_and_arguments():
    with pytest.raises(ValueError, match=r"'sigmoid'.*ref_chosen_logps and ref_rejected_logps.*simpo"):
        compute("dpo", *P)


def test_missing_one_reference_names_only_that_one():
    with pytest.raises(ValueError, match=r"pass ref_rejected_logps \("):
        compute("ipo", *P, R[0])


def test_unknown_hyperparameter_suggests_close_match():
    with pytest.raises(ValueError, match=r"'sigmoid'.*unknown hyperparameter or input 'betta'.*Did you mean 'beta'"):
        compute("sigmoid", *P, *R, betta=0.1)


def test_hyperparameter_of_another_objective_is_rejected():
    with pytest.raises(ValueError, match=r"'sigmoid'.*'simpo_gamma'"):
        compute("sigmoid", *P, *R, simpo_gamma=0.5)


def test_unknown_objective_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown objective 'dpoo'.*Did you mean: .*dpo"):
        get("dpoo")
    with pytest.raises(ValueError, match=r"unknown objective 'simpoo'.*simpo"):
        compute("simpoo", *P)


def test_missing_required_input_is_named():
    with pytest.raises(ValueError, match=r"'odpo'.*margin"):
        compute("odpo", *P, *R)
    with pytest.raises(ValueError, match=r"'tdpo2'.*chosen_seq_kl, rejected_seq_kl"):
        compute("tdpo", *P, *R)


def test_missing_lengths_say_what_to_pass():
    with pytest.raises(ValueError, match=r"'simpo'.*chosen_lengths and rejected_lengths"):
        compute("simpo", *P)


def test_zero_length_is_rejected_with_row():
    with pytest.raises(ValueError, match=r"'simpo'.*chosen_lengths.*rows \[1\]"):
        compute("simpo", *P, chosen_lengths=torch.tensor([2, 0]), rejected_lengths=torch.tensor([2, 2]))


def test_modifier_without_token_inputs_names_them():
    with pytest.raises(ValueError, match=r"'sigmoid'.*use_weighting=True \(WPO\).*chosen_token_log_sumsq"):
        compute("sigmoid", *P, *R, use_weighting=True)
    with pytest.raises(ValueError, match=r"'hinge'.*LD-DPO.*chosen_token_logps"):
        compute("hinge", *P, *R, ld_alpha=0.5)


def test_use_weighting_is_refused_for_aot():
    with pytest.raises(ValueError, match=r"'aot'.*use_weighting"):
        compute("aot", *P, *R, use_weighting=True)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"ref_chosen_logps has shape \(3,\), expected \(2,\)"):
        compute("sigmoid", *P, t(1.0, 2.0, 3.0), R[1])


def test_wrong_entry_point_points_to_the_right_one():
    with pytest.raises(ValueError, match=r"'kto'.*compute_unpaired"):
        compute("kto", *P, *R)
    with pytest.raises(ValueError, match=r"'sigmoid'.*prefalign.objectives.compute"):
        compute_unpaired("sigmoid", P[0], torch.tensor([True, False]), R[0])
    with pytest.raises(ValueError, match=r"'plackett_luce'.*compute_listwise"):
        compute("pl", *P, *R)


def test_invalid_choice_and_type():
    with pytest.raises(ValueError, match=r"f_divergence_type='kl'.*reverse_kl"):
        compute("sigmoid", *P, *R, f_divergence_type="kl")
    with pytest.raises(ValueError, match=r"beta must be a number"):
        compute("sigmoid", *P, *R, beta="0.1")


def test_out_of_range_smoothing():
    with pytest.raises(ValueError, match=r"'robust'.*\[0, 0.5\)"):
        compute("robust", *P, *R, label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"'exo_pair'.*must be in \(0, 1\)"):
        compute("exo_pair", *P, *R, label_smoothing=0.0)


def test_negative_odpo_margin_is_rejected():
    with pytest.raises(ValueError, match=r"'odpo'.*margin must be >= 0.*rows \[1\]"):
        compute("odpo", *P, *R, margin=t(1.0, -1.0))


def test_kto_without_reference_point_explains_both_options():
    with pytest.raises(ValueError, match=r"'kto'.*kl_logps and ref_kl_logps.*or kl"):
        compute_unpaired("kto", P[0], torch.tensor([True, False]), R[0])
    with pytest.raises(ValueError, match=r"not both"):
        compute_unpaired("kto", P[0], torch.tensor([True, False]), R[0], kl=0.1, kl_logps=P[1], ref_kl_logps=R[1])


def test_npo_refuses_desirable_examples():
    with pytest.raises(ValueError, match=r"'npo'.*rows \[0\] are labelled desirable"):
        compute_unpaired("npo", P[0], torch.tensor([True, False]), R[0])


def test_unpaired_labels_required_and_bool():
    with pytest.raises(ValueError, match=r"'kto'.*needs labels"):
        compute_unpaired("kto", P[0], None, R[0], kl=0.0)
    with pytest.raises(ValueError, match=r"labels must be bool"):
        compute_unpaired("kto", P[0], torch.tensor([0.5, 1.0]), R[0], kl=0.0)


def test_listwise_needs_scores_and_bool_mask():
    pol = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"'lipo_lambda'.*needs scores"):
        compute_listwise("lipo", pol, pol)
    with pytest.raises(ValueError, match=r"mask must be a bool"):
        compute_listwise("pl", pol, pol, scores=pol, mask=torch.ones(1, 3))
