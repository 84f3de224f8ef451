"""``dstc``: code pairs selected by a pass matrix of self-written tests (DSTC, Liu et al. 2024:
"Direct Preference Learning with Only Self-Generated Tests and Code to Improve Code LMs").

It reads the matrix the ``selftests:`` scorer makes (`prefalign.scoring.self_tests`):
M[i][j] = 1 when kept response i passes test j. The minimax selection, as we implement it (the
paper's wording: a chosen pair with a clear gap over the rejected, robust to wrong tests):

- chosen code: the one that passes the most tests (the first of equal maxima); chosen test: of
  the tests it passes, the one the fewest codes pass (the strictest test it still passes);
- rejected code: the one that passes the fewest tests (the first of equal minima); rejected
  test: of the tests it fails, the one the most codes pass (the test most likely right).

A prompt whose codes all pass the same number of tests makes no pair (``no_pass_gap``); one
whose log has no matrix (another scorer) none either (``no_pass_matrix``). With ``concat=1``
(the paper's test-code concatenation; the default) each response is its code followed by its
test, so the pair also teaches which tests to trust; ``concat=0`` keeps the code alone. Pairs
carry ``chosen_test`` and ``rejected_test`` (the tests' indices in the log's
``notes.self_tests``).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from prefalign.core.registry import Option

from .pairs import make_pair
from .strategies import pair_strategy


def minimax(matrix: Sequence[Sequence[float]]) -> tuple[int, int, int, int] | None:
    """(chosen code, chosen test, rejected code, rejected test) of a pass matrix (rows codes,
    columns tests), or None when every code passes as many tests."""
    code_passes = [sum(row) for row in matrix]
    test_passes = [sum(col) for col in zip(*matrix)]
    best = max(range(len(matrix)), key=lambda i: (code_passes[i], -i))
    worst = min(range(len(matrix)), key=lambda i: (code_passes[i], i))
    if code_passes[best] == code_passes[worst]:
        return None
    passed = [j for j, v in enumerate(matrix[best]) if v]
    failed = [j for j, v in enumerate(matrix[worst]) if not v]
    chosen_test = min(passed, key=lambda j: (test_passes[j], j))
    rejected_test = max(failed, key=lambda j: (test_passes[j], -j))
    return best, chosen_test, worst, rejected_test


@pair_strategy(
    "dstc", output="pairwise", needs=("self_tests",), rewrites_text=True,
    paper="DSTC: Direct Preference Learning with Only Self-Generated Tests and Code to "
          "Improve Code LMs (Liu et al. 2024)",
    summary="with `selftests:`: the code passing the most self-written tests with its "
            "strictest passed test vs the code passing the fewest with its most-passed failed "
            "test (minimax); code and test concatenated",
    options=[Option("concat", bool, True, "each response is its code then its test (the "
                    "paper's test-code concatenation); 0: the code alone")])
def dstc(item, kept, opts, dropped: Counter, notes: dict) -> list:
    tests = notes.get("self_tests")
    rows = [k.votes for k in kept]
    if not tests or any(r is None or len(r) != len(tests) for r in rows):
        dropped["no_pass_matrix"] += 1
        return []
    picked = minimax(rows)
    if picked is None:
        dropped["no_pass_gap"] += 1
        return []
    best, chosen_test, worst, rejected_test = picked
    chosen, rejected = kept[best], kept[worst]
    if opts.strategy_options["concat"]:
        chosen = chosen._replace(text=f"{chosen.text.rstrip()}\n\n{tests[chosen_test].strip()}")
        rejected = rejected._replace(
            text=f"{rejected.text.rstrip()}\n\n{tests[rejected_test].strip()}")
    pair = make_pair(item, chosen, rejected, opts, dropped)
    if pair is None:
        return []
    pair.meta.update(chosen_test=chosen_test, rejected_test=rejected_test)
    return [pair]
