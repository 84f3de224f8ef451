"""The built-in addition task (the embedded demo's): multi-digit addition, with imperfect
demonstrations and its one verifier.

A prompt is ``"37+48="`` and the answer is the sum's digits (``"85"``). The demonstrations come
from a noisy teacher that adds digit by digit and forgets each carry with probability
``carry_forget``, so a model trained on them learns addition only partly: the room that
preference training on verifier-scored samples can close.

Held-out prompts are a fixed random share of all operand pairs, never shown in the
demonstrations or the synth prompts, so held-out accuracy measures generalisation rather than
recall.

The verifier: a response is right when it is exactly the sum's digits (surrounding whitespace
allowed). `verify` is its scorer form (``verifier:prefalign.demo.addition:verify``, what the
demo's synth scores with) and `is_correct` its (prompt, response) form (what the demo's eval
counts); both are `check`, so a response scores 1 in synth exactly when eval counts it right.
(`prefalign.synth.checks.exact_answer`, "the last integer equals the answer", is a looser
check for free-form math answers and is not this task's verifier.)
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from prefalign.data import write_jsonl

VERIFIER = "verifier:prefalign.demo.addition:verify"
_PROMPT = re.compile(r"^(\d+)\+(\d+)=$")


def noisy_sum(a: int, b: int, rng: random.Random, carry_forget: float) -> int:
    """a + b computed digit by digit, dropping each carry with probability ``carry_forget``."""
    da, db = str(a)[::-1], str(b)[::-1]
    digits, carry = [], 0
    for i in range(max(len(da), len(db))):
        s = carry + (int(da[i]) if i < len(da) else 0) + (int(db[i]) if i < len(db) else 0)
        digits.append(s % 10)
        carry = s // 10
        if carry and rng.random() < carry_forget:
            carry = 0
    if carry:
        digits.append(carry)
    return int("".join(map(str, reversed(digits))))


def answer_of(prompt: str) -> int:
    """The correct answer of a task prompt (``"37+48="`` -> 85)."""
    m = _PROMPT.match(prompt.strip())
    if not m:
        raise ValueError(f"not an addition prompt of the demo task: {prompt!r}")
    return int(m.group(1)) + int(m.group(2))


def check(response: str, answer: int) -> tuple[bool, str | None]:
    """The task's one verifier: ``response`` is exactly ``answer``'s digits (surrounding
    whitespace allowed); else False with the reason."""
    got, want = response.strip(), str(int(answer))
    if got == want:
        return True, None
    if not got:
        return False, "empty answer"
    return False, f"answered {got[:40]!r}, expected {want!r}"


def verify(response: str, example: dict) -> tuple[bool, str | None]:
    """`check` as a scorer's verifier (``verifier:prefalign.demo.addition:verify``): the row's
    ``answer`` column, else the answer of its ``prompt``."""
    answer = example["answer"] if example.get("answer") is not None else \
        answer_of(example["prompt"])
    return check(response, answer)


def is_correct(prompt: str, response: str) -> bool:
    """`check` on a task prompt and a bare response (what the demo's eval counts)."""
    return check(response, answer_of(prompt))[0]


@dataclass(frozen=True)
class TaskFiles:
    sft: Path  # prompt, completion: the noisy teacher's demonstrations
    prompts: Path  # prompt, answer: prompts to synthesize preferences on
    heldout: Path  # prompt, answer: held-out evaluation prompts


@dataclass(frozen=True)
class AdditionTask:
    digits: int = 2
    carry_forget: float = 0.6

    def operand_pairs(self) -> list[tuple[int, int]]:
        lo, hi = 10 ** (self.digits - 1), 10 ** self.digits
        return [(a, b) for a in range(lo, hi) for b in range(lo, hi)]

    def write(self, out: Path, *, seed: int, sft_examples: int, synth_prompts: int,
              heldout: int) -> TaskFiles:
        """Write the three data files under ``out`` (the same seed gives the same files)."""
        rng = random.Random(seed)
        pairs = self.operand_pairs()
        rng.shuffle(pairs)
        if heldout >= len(pairs):
            raise ValueError(f"{heldout} held-out prompts leave none to train on "
                             f"({len(pairs)} operand pairs with {self.digits} digits)")
        held, train = pairs[:heldout], pairs[heldout:]
        sft = []
        for _ in range(sft_examples):
            a, b = rng.choice(train)
            sft.append({"prompt": f"{a}+{b}=",
                        "completion": str(noisy_sum(a, b, rng, self.carry_forget))})
        synth = [rng.choice(train) for _ in range(synth_prompts)]
        files = TaskFiles(out / "sft.jsonl", out / "prompts.jsonl", out / "heldout.jsonl")
        write_jsonl(sft, files.sft)
        write_jsonl([{"prompt": f"{a}+{b}=", "answer": a + b} for a, b in synth], files.prompts)
        write_jsonl([{"prompt": f"{a}+{b}=", "answer": a + b} for a, b in held], files.heldout)
        return files


def demonstration_accuracy(path: Path) -> float:
    """Share of the demonstrations in ``path`` (prompt, completion rows) that are right."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no demonstrations")
    return sum(is_correct(r["prompt"], r["completion"]) for r in rows) / len(rows)
