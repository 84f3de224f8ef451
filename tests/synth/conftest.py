"""Fixtures for the synth tests (tiny models come from tests/conftest.py)."""

import json

import pytest


@pytest.fixture()
def write_prompts(tmp_path):
    def write(rows, name="prompts.jsonl"):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    return write
