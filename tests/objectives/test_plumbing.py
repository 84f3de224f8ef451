"""The registry's, the dispatcher's and the state's smaller promises, each checked exactly: the
allowed-values wording, text coercion, immutable records, the printed table, argument
conversion (lists take the log-probs' dtype), which side a check reads, running moments before
any update, and rewards that never carry a gradient."""

import dataclasses

import pytest
import torch

from prefalign import objectives as O
from prefalign.objectives import Hyperparameter, compute, compute_unpaired, get

from .hand import logsig, t

# values that float32 cannot hold: a float32 conversion anywhere shows at 1e-12
PW, PL, RW, RL = t(-1.1, -2.3), t(-3.7, -4.1), t(-1.3, -2.9), t(-3.1, -3.3)


def dpo(beta=0.1, pw=PW, pl=PL, rw=RW, rl=RL):
    return [-logsig(beta * ((a - c) - (b - d))) for a, b, c, d in zip(pw.tolist(), pl.tolist(), rw.tolist(), rl.tolist())]


def close(out, expected, tol=1e-12):
    assert out.tolist() == pytest.approx(expected, rel=tol, abs=tol)


# ---- Hyperparameter -------------------------------------------------------------------------------
@pytest.mark.parametrize("h,words", [
    (Hyperparameter("a", "x", "d", choices=("x", "y")), "one of 'x', 'y'"),
    (Hyperparameter("a", False, "d"), "True or False"),
    (Hyperparameter("a", "text", "d"), "any value"),
    (Hyperparameter("a", 1.0, "d"), "a finite number"),
    (Hyperparameter("a", None, "d"), "a finite number (or None = off)"),
    (Hyperparameter("a", 1.0, "d", low=0.0), ">= 0"),
    (Hyperparameter("a", 1.0, "d", low=0.5, low_open=True), "> 0.5"),
    (Hyperparameter("a", None, "d", low=0.0), ">= 0 (or None = off)"),
    (Hyperparameter("a", 1.0, "d", high=2.0), "<= 2"),
    (Hyperparameter("a", 1.0, "d", high=2.0, high_open=True), "< 2"),
    (Hyperparameter("a", None, "d", high=2.0), "<= 2 (or None = off)"),
    (Hyperparameter("a", 0.1, "d", low=0.0, high=1.0), "in [0, 1]"),
    (Hyperparameter("a", 0.1, "d", low=0.0, high=1.0, low_open=True, high_open=True), "in (0, 1)"),
    (Hyperparameter("a", None, "d", low=0.0, high=1.0), "in [0, 1] (or None = off)"),
])
def test_allowed_values_in_words(h, words):
    assert h.allowed == words


def test_numeric_and_range_edges():
    h = Hyperparameter("a", 1.0, "d", low=0.0, high=1.0, low_open=True)
    assert h.check("o", 1.0) == 1.0 and h.check("o", 1) == 1.0 and isinstance(h.check("o", 1), float)
    for bad in (0.0, -0.1, 1.0000001):
        with pytest.raises(ValueError, match="out of range"):
            h.check("o", bad)
    closed = Hyperparameter("a", 1.0, "d", low=0.0, high=1.0)
    assert closed.check("o", 0.0) == 0.0 and closed.check("o", 1.0) == 1.0
    with pytest.raises(ValueError, match="must be a number"):
        closed.check("o", True)
    with pytest.raises(ValueError, match="must be True or False"):
        Hyperparameter("a", False, "d").check("o", 1)
    assert Hyperparameter("a", None, "d", low=0.0).check("o", None) is None
    with pytest.raises(ValueError, match="must be a number"):
        Hyperparameter("a", 1.0, "d", low=0.0).check("o", None)
    assert Hyperparameter("a", "x", "d").check("o", object) is object  # any value
    assert not Hyperparameter("a", "x", "d", choices=("x",)).numeric
    assert not Hyperparameter("a", True, "d").numeric and Hyperparameter("a", 3, "d").numeric


@pytest.mark.parametrize("text,value", [("true", True), ("Yes", True), (" on ", True), ("1", True),
                                        ("false", False), ("NO", False), ("off", False), ("0", False)])
def test_booleans_from_text(text, value):
    assert Hyperparameter("a", False, "d").coerce("o", text) is value


def test_text_coercion_edges():
    with pytest.raises(ValueError, match="must be True or False, got 'maybe'"):
        Hyperparameter("a", False, "d").coerce("o", "maybe")
    optional = Hyperparameter("a", None, "d", low=0.0)
    for text in ("none", "null", "~", "", " None "):
        assert optional.coerce("o", text) is None
    with pytest.raises(ValueError, match="must be a number"):
        Hyperparameter("a", 1.0, "d", low=0.0).coerce("o", "none")
    assert Hyperparameter("a", 1.0, "d", low=0.0).coerce("o", " 2.5 ") == 2.5
    assert Hyperparameter("a", "x", "d", choices=("x", "y")).coerce("o", "y") == "y"
    assert Hyperparameter("a", 1.0, "d").coerce("o", 3) == 3.0  # not text: checked as it is


# ---- immutable records ----------------------------------------------------------------------------
def test_records_and_batches_are_frozen():
    batch = O.PairwiseBatch(PW, PL)
    records = [get("sigmoid"), get("sigmoid").hyperparameters[0], batch, O.ObjectiveOutput(PW),
               O.UnpairedBatch(PW, torch.tensor([True, False])), O.ListwiseBatch(PW[None], None, None, None, PW[None] > 0),
               get("bco").state[0]]
    for record in records:
        field = dataclasses.fields(record)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)


# ---- the table ------------------------------------------------------------------------------------
def test_table_needs_column_and_alignment():
    text = O.table_text()
    lines = text.splitlines()
    header, rule, rows = lines[0], lines[1], [line for line in lines[2:] if line and not line.startswith("Pairwise")]
    paper_col = header.index("paper")
    for row, o in zip(rows, O.available()):
        assert row.startswith(o.name) and row[paper_col:] == o.paper, row
        assert row[paper_col - 2:paper_col] == "  "
    needs = lambda name: next(r for r in rows if r.startswith(name + " ")).split("  ")  # noqa: E731
    cells = {name: [c.strip() for c in needs(name) if c.strip()] for name in ("wpo", "ld_dpo", "odpo", "tdpo1",
                                                                             "kto", "simpo", "sigmoid", "lipo_lambda")}
    assert "token log sum p^2, token logps+masks" in cells["wpo"]
    assert "ref token logps, token logps+masks" in cells["ld_dpo"]
    assert "margin" in cells["odpo"] and "chosen_seq_kl, rejected_seq_kl" in cells["tdpo1"]
    assert "kl_logps+ref_kl_logps or kl" in cells["kto"] and "lengths" in cells["simpo"]
    assert "-" in cells["sigmoid"] and "scores" in cells["lipo_lambda"]
    widths = [len(c) for c in rule.split("  ")]
    starts = [0]
    for w in widths[:-1]:
        starts.append(starts[-1] + w + 2)
    for row in rows:
        for s in starts[1:]:
            assert row[s - 2:s] == "  " or row[s - 1] == " "


def test_names_are_normalized():
    assert get(" DPO ").name == "sigmoid" and get("robust-dpo").name == "robust" and get("exo").name == "exo_pair"
    with pytest.raises(ValueError, match=r"unknown objective 'xyz'\. Run `prefalign objectives`.*all \d+ objectives"):
        get("xyz")


# ---- conversions: lists take the first tensor's dtype ---------------------------------------------
def test_lists_take_the_dtype_of_the_policy_log_probs():
    close(compute("sigmoid", PW, PL.tolist(), RW.tolist(), RL.tolist()), dpo())
    margin = [0.3, 1.7]
    close(compute("odpo", PW, PL, RW, RL, margin=margin),
          [-logsig(0.1 * h - __import__("math").log1p(m)) for h, m in zip(
              [(a - c) - (b - d) for a, b, c, d in zip(PW.tolist(), PL.tolist(), RW.tolist(), RL.tolist())], margin)])
    # per-token inputs as lists: log-probs take the dtype, masks stay bool
    ct, rt = [[-0.3, -0.7], [-1.1, -0.9]], [[-0.2, 0.0], [-0.6, -1.3]]
    cm, rm = [[True, True], [True, True]], [[True, False], [True, True]]
    out = compute("sigmoid", PW, PL, RW, RL, ld_alpha=0.5, ld_apply_to_reference=False, chosen_token_logps=ct,
                  rejected_token_logps=rt, chosen_token_mask=cm, rejected_token_mask=rm)
    pc = [-0.3 + 0.5 * -0.7, -1.1 - 0.9]
    pr = [-0.2, -0.6 - 1.3]
    close(out, dpo(pw=t(*pc), pl=t(*pr)))
    # unpaired: the reference and the mismatched pairs too
    labels = torch.tensor([True, False])
    z = max(0.0, ((-2.1 - -2.3) + (-0.1 - -0.7)) / 2)  # 0.4
    out = compute_unpaired("kto", PW, labels, RW.tolist(), kl_logps=[-2.1, -0.1], ref_kl_logps=[-2.3, -0.7])
    rho = [a - b for a, b in zip(PW.tolist(), RW.tolist())]
    import math

    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    close(out, [1 - sig(0.1 * (rho[0] - z)), 1 - sig(0.1 * (z - rho[1]))])
    close(compute_unpaired("bco", PW, labels, RW, delta=0.3),
          [-logsig(0.1 * rho[0] - 0.3), -logsig(-(0.1 * rho[1] - 0.3))])


def test_each_check_reads_its_own_side():
    with pytest.raises(ValueError, match=r"pass ref_chosen_logps \("):
        compute("sigmoid", PW, PL, None, RL)
    with pytest.raises(ValueError, match=r"'simpo': needs response lengths"):
        compute("simpo", PW, PL, chosen_lengths=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"'simpo': needs response lengths"):
        compute("simpo", PW, PL, rejected_lengths=torch.tensor([1, 2]))
    # given lengths win over the masks' counts, on each side
    cm = torch.tensor([[True, True, True], [True, False, False]])
    rm = torch.tensor([[True, True, False], [True, True, True]])
    tok = torch.zeros(2, 3, dtype=torch.float64)
    kw = dict(ld_alpha=1.0, chosen_token_logps=tok, rejected_token_logps=tok, chosen_token_mask=cm, rejected_token_mask=rm)
    lw, ll = [4, 5], [6, 7]

    def simpo(cl, rl):
        return [-logsig(2.0 * (a / n - b / m) - 1.0) for a, b, n, m in zip(PW.tolist(), PL.tolist(), cl, rl)]

    close(compute("simpo", PW, PL, chosen_lengths=torch.tensor(lw), **kw), simpo(lw, [2, 3]))
    close(compute("simpo", PW, PL, rejected_lengths=torch.tensor(ll), **kw), simpo([3, 1], ll))


def test_bad_rows_are_listed_up_to_ten():
    n = 12
    bad = torch.zeros(n, dtype=torch.long)
    with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]$"):
        compute("simpo", torch.zeros(n), torch.zeros(n), chosen_lengths=bad, rejected_lengths=bad + 1)


def test_reference_free_reward_metrics_use_the_lengths_of_their_own_side():
    cl, rl = torch.tensor([2, 5]), torch.tensor([4, 1])
    m = O.pairwise_reward_metrics(PW, PL, beta=0.5, chosen_lengths=cl, rejected_lengths=rl)
    rc = [0.5 * p / n for p, n in zip(PW.tolist(), cl.tolist())]
    rr = [0.5 * p / n for p, n in zip(PL.tolist(), rl.tolist())]
    assert m["rewards/chosen"] == pytest.approx(sum(rc) / 2) and m["rewards/rejected"] == pytest.approx(sum(rr) / 2)
    assert m["rewards/margin"] == pytest.approx(sum(a - b for a, b in zip(rc, rr)) / 2)


def test_rewards_never_carry_a_gradient():
    pw = PW.clone().requires_grad_()
    out = O.run("sigmoid", O.PairwiseBatch(pw, PL, RW, RL), {})
    assert out.losses.requires_grad and not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad
    out = O.run("simpo", O.PairwiseBatch(pw, PL, chosen_lengths=torch.tensor([2, 3]),
                                          rejected_lengths=torch.tensor([1, 4])), {})
    assert not out.chosen_rewards.requires_grad
    out = O.run("kto", O.UnpairedBatch(pw, torch.tensor([True, False]), RW, kl=t(0.0)), {})
    assert not out.rewards.requires_grad
    lst = O.ListwiseBatch(pw[None], RW[None], t(1.0, 0.0)[None], None, torch.ones(1, 2, dtype=torch.bool))
    for name in ("lipo", "plackett_luce"):
        assert not O.run(name, lst, {}).rewards.requires_grad
    assert not O.implicit_rewards(pw).requires_grad


# ---- running moments ------------------------------------------------------------------------------
def test_running_moments_before_any_update_and_their_bounds():
    rm = O.RunningMoments()
    assert (rm.mean, rm.std, rm.count) == (0.0, 0.0, 0)
    assert rm.state_dict() == {"momentum": None, "count": 0, "mean": 0.0, "var": 0.0, "std": 0.0,
                               "ema_from_zero": False, "unbiased": False}
    assert rm.update(torch.zeros(0)).count == 0
    assert O.RunningMoments(0.0).momentum == 0.0
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
            O.RunningMoments(bad)
    ema = O.RunningMoments(0.5).update(t(2.0, 4.0))
    assert (ema.mean, ema.std, ema.count) == (3.0, 1.0, 2)
    assert ema.state_dict()["var"] == 0.0  # the EMA keeps no variance of all values
