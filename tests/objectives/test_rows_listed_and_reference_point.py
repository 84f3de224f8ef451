"""Refusals name the offending rows, at most the first ten; KTO's reference point takes
exactly one of kl or the pair kl_logps / ref_kl_logps."""

import pytest
import torch

from prefalign.objectives import compute, compute_unpaired, kto_reference_point

from .hand import t

FIRST_TEN = r"\[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"


def test_odpo_lists_at_most_ten_bad_margins():
    n = 12
    z = torch.zeros(n, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"margin must be >= 0.*offset_fn='log1p'; not at rows {FIRST_TEN}$"):
        compute("odpo", z - 1, z - 2, z - 1, z - 2, margin=-torch.ones(n, dtype=torch.float64))


def test_npo_lists_at_most_ten_desirable_rows():
    n = 12
    with pytest.raises(ValueError, match=rf"but rows {FIRST_TEN} are labelled desirable"):
        compute_unpaired("npo", -torch.ones(n, dtype=torch.float64), torch.ones(n, dtype=torch.bool),
                         -torch.ones(n, dtype=torch.float64))


def test_sft_lists_at_most_ten_undesirable_rows():
    n = 12
    with pytest.raises(ValueError, match=rf"but rows {FIRST_TEN} are labelled undesirable$"):
        compute_unpaired("sft", -torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.bool),
                         lengths=torch.full((n,), 3))


def test_kto_reference_point_refuses_kl_together_with_either_log_prob_list():
    for extra in (dict(kl_logps=t(-1.0)), dict(ref_kl_logps=t(-1.0)), dict(kl_logps=t(-1.0), ref_kl_logps=t(-2.0))):
        with pytest.raises(ValueError, match="pass either kl, or kl_logps with ref_kl_logps, not both"):
            kto_reference_point(kl=0.2, **extra)


def test_kto_reference_point_needs_both_log_prob_lists():
    for extra in (dict(kl_logps=t(-1.0)), dict(ref_kl_logps=t(-1.0)), {}):
        with pytest.raises(ValueError, match="needs its KL reference point: pass kl_logps and ref_kl_logps"):
            kto_reference_point(**extra)
    with pytest.raises(ValueError, match="'kto'.*needs its KL reference point"):
        compute_unpaired("kto", t(-1.0), torch.tensor([True]), t(-1.2), kl_logps=t(-1.0))
    # both given: max(0, mean(kl_logps − ref_kl_logps))
    assert kto_reference_point(kl_logps=t(-1.0, -2.0), ref_kl_logps=t(-1.5, -2.1)).item() == pytest.approx(0.3, abs=1e-12)
