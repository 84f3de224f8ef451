"""The addition task (the demo's): the noisy teacher, its one verifier (synth's scores and the
demo's eval agree) and the held-out split."""

import json
import random

import pytest

from prefalign.demo.stages import verifier_compare
from prefalign.generation.types import PromptItem
from prefalign.scoring import build_scorer
from prefalign.demo.addition import (VERIFIER, AdditionTask, answer_of, demonstration_accuracy,
                                      is_correct, noisy_sum, verify)


def test_teacher_without_noise_adds_correctly():
    rng = random.Random(0)
    for a, b in AdditionTask().operand_pairs()[::37]:
        assert noisy_sum(a, b, rng, carry_forget=0.0) == a + b


@pytest.mark.parametrize("a,b,forgetful", [(58, 67, 15), (99, 99, 88), (12, 34, 46),
                                           (95, 10, 5), (19, 11, 20)])
def test_teacher_that_forgets_every_carry(a, b, forgetful):
    # 58+67: 8+7=15 -> 5 (carry dropped), 5+6=11 -> 1 (carry dropped) -> "15"
    # 95+10: 5+0=5, 9+1=10 -> 0 (carry dropped) -> "05" = 5
    assert noisy_sum(a, b, random.Random(0), carry_forget=1.0) == forgetful


def test_demonstration_accuracy_matches_the_carry_free_share(tmp_path):
    # A teacher that forgets every carry is right exactly on the carry-free sums.
    task = AdditionTask(carry_forget=1.0)
    files = task.write(tmp_path, seed=0, sft_examples=20000, synth_prompts=1, heldout=1)
    pairs = task.operand_pairs()
    carry_free = sum((a % 10 + b % 10 < 10) and (a + b < 100) for a, b in pairs) / len(pairs)
    assert demonstration_accuracy(files.sft) == pytest.approx(carry_free, abs=0.015)
    exact = AdditionTask(carry_forget=0.0).write(tmp_path / "exact", seed=0, sft_examples=500,
                                                 synth_prompts=1, heldout=1)
    assert demonstration_accuracy(exact.sft) == 1.0


def test_answer_and_verifier():
    assert answer_of("37+48=") == 85
    assert is_correct("37+48=", "85") and is_correct("37+48=", " 85 ")
    assert not is_correct("37+48=", "75") and not is_correct("37+48=", "85 85")
    with pytest.raises(ValueError, match="not an addition prompt"):
        answer_of("37*48=")
    assert verifier_compare("1+2=", "3", "4") == 1
    assert verifier_compare("1+2=", "4", "3") == -1
    assert verifier_compare("1+2=", "3", "3") == 0 and verifier_compare("1+2=", "5", "4") == 0


TRICKY = ["85", " 85 ", "85\n", "\t85", "085", "85 85", "75 85", "85.", "+85", "8 5", "",
          " ", "85a", "the answer is 85", "-85", "٨٥", "85\n\n86", "1+2=85"]


def test_synth_scores_and_demo_eval_agree_on_tricky_strings():
    """The scorer synth builds from the demo's VERIFIER gives 1 exactly when the demo's eval
    counts the response right (the last-integer check, exact_answer, said 1 for "75 85")."""
    prompt = "37+48="
    item = PromptItem(0, prompt, meta={"answer": 85})
    scores = build_scorer(VERIFIER).score([(item, TRICKY)])[0]
    got = {t: s.value for t, s in zip(TRICKY, scores)}
    want = {t: float(is_correct(prompt, t)) for t in TRICKY}
    assert got == want
    assert {t for t, v in got.items() if v == 1.0} == {"85", " 85 ", "85\n", "\t85"}
    # the row's answer column and the prompt's own answer are the same check
    assert all(verify(t, {"prompt": prompt}) == verify(t, {"prompt": prompt, "answer": 85})
               for t in TRICKY)
    assert verify("75", {"answer": 85}) == (False, "answered '75', expected '85'")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_written_files_keep_heldout_prompts_out_of_training(tmp_path):
    files = AdditionTask().write(tmp_path, seed=3, sft_examples=3000, synth_prompts=500,
                                 heldout=400)
    sft, prompts, held = _rows(files.sft), _rows(files.prompts), _rows(files.heldout)
    assert (len(sft), len(prompts), len(held)) == (3000, 500, 400)
    held_prompts = {r["prompt"] for r in held}
    assert len(held_prompts) == 400
    assert not held_prompts & {r["prompt"] for r in sft}
    assert not held_prompts & {r["prompt"] for r in prompts}
    assert all(r["answer"] == answer_of(r["prompt"]) for r in prompts + held)
    wrong = sum(int(r["completion"]) != answer_of(r["prompt"]) for r in sft)
    assert 0.3 < wrong / len(sft) < 0.7  # imperfect demonstrations, as the demo needs
    again = AdditionTask().write(tmp_path / "again", seed=3, sft_examples=3000,
                                 synth_prompts=500, heldout=400)
    assert again.sft.read_bytes() == files.sft.read_bytes()


def test_too_many_heldout_prompts_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="held-out"):
        AdditionTask().write(tmp_path, seed=0, sft_examples=1, synth_prompts=1, heldout=8100)
