import json
import random

import pytest


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pair_file(tmp_path):
    rnd = random.Random(0)
    rows = []
    for i in range(16):
        a, b = rnd.randint(1, 50), rnd.randint(1, 50)
        rows.append({"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + rnd.randint(1, 9))})
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


@pytest.fixture
def unpaired_file(tmp_path):
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1 if i % 2 else i + 2), "label": bool(i % 2)}
            for i in range(12)]
    return write_jsonl(tmp_path / "unpaired.jsonl", rows)


@pytest.fixture
def ranked_file(tmp_path):
    rows = [{"prompt": f"{i}*2=", "completions": [str(2 * i), str(2 * i + 1), str(i)], "scores": [1.0, 0.5, 0.0]}
            for i in range(8)]
    return write_jsonl(tmp_path / "ranked.jsonl", rows)


@pytest.fixture
def sft_file(tmp_path):
    rows = [{"prompt": f"{i}+{i}=", "completion": str(2 * i)} for i in range(12)]
    return write_jsonl(tmp_path / "sft.jsonl", rows)
