"""Misspelt names: how many close matches the registry suggests, and that they are spelt the
way they are registered (canonical names and aliases with underscores)."""

import pytest

from prefalign.objectives import get


def test_unknown_objective_suggests_at_most_five_names():
    """get() names the five closest registered names and aliases, closest first, no more."""
    with pytest.raises(ValueError, match=r"^unknown objective 'dpo_pair'\. Did you mean: exo_pair, bco_pair, dpop, "
                                         r"nca_pair, dpo_norm\? Run `prefalign objectives`"):
        get("dpo_pair")


def test_suggestions_are_spelt_with_underscores_even_for_a_hyphenated_query():
    """A hyphenated misspelling is normalized ('-' → '_') and the suggestions are real names."""
    with pytest.raises(ValueError, match=r"^unknown objective 'BCO-pari'\. Did you mean: bco_pair, nca_pair, "
                                         r"exo_pair, bco, aot_unpaired\?"):
        get("BCO-pari")
    assert get("Robust-DPO").name == "robust" and get("apo-zero-unpaired").name == "apo_zero_unpaired"


def test_unknown_hyperparameter_suggests_at_most_three_names():
    """resolve() names the three closest hyperparameters, closest first, then lists them all."""
    with pytest.raises(ValueError, match=r"^objective 'beta_dpo': unknown hyperparameter 'beta_dpo_alphas'\. Did you "
                                         r"mean 'beta_dpo_alpha' or 'beta_dpo_sampling' or 'beta_dpo_filter_ratio'\? "
                                         r"Hyperparameters: beta, beta_dpo_alpha, "):
        get("beta_dpo").resolve({"beta_dpo_alphas": 0.1})
