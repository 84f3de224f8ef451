"""Fixtures for the synth tests: prompt files and a tiny model (built once per session)."""

import json

import pytest


@pytest.fixture()
def write_prompts(tmp_path):
    def write(rows, name="prompts.jsonl"):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    return write


def arithmetic_rows(count, chat=True):
    rows = []
    for i in range(count):
        a, b = i + 1, 2 * i + 3
        q = f"What is {a}+{b}?"
        rows.append({"prompt": [{"role": "user", "content": q}] if chat else q, "answer": a + b})
    return rows
