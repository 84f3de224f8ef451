"""`prefalign synth` then `prefalign train`, through the CLI, with every tiny tokenizer kind:
the response tokens training uses are exactly the ones the policy sampled.

Byte-level BPE, SentencePiece-style (Metaspace), word-level and char tokenizers: a response
decoded on its own loses its leading space with the Metaspace and word-level ones, and a random
policy samples token sequences that re-encode otherwise with all but char. Synth writes the text
decoded in the prompt's context and the sampled ids beside it; training uses the ids.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from prefalign.cli import main
from prefalign.data import load_records, tokenize_records
from prefalign.data.sampled import FIELD
from prefalign.demo.tiny_models import TOKENIZER_KINDS

SCORER = "verifier:test_synth_train_roundtrip:hashed_score"


def hashed_score(response, example):
    """A score with (practically) no ties, so every prompt gives a pair."""
    return int(hashlib.sha256(response.encode()).hexdigest()[:8], 16) / 16 ** 8


def prompt_rows():
    plain = ["What is 1+2?", "The capital of France is", "Thank you very much."]
    chats = ["What is the capital of France?", "Please answer the question.", "Hello there."]
    return ([{"prompt": p} for p in plain]
            + [{"prompt": [{"role": "user", "content": c}]} for c in chats])


def synth_cli(model, prompts, out, *flags):
    return main(["synth", "--model", str(model), "--prompts", str(prompts), "--output", str(out),
                 "--scorer", SCORER, "--n", "3", "--max-new-tokens", "6", "--temperature", "1.0",
                 "--device", "cpu", "--no-progress", *flags])


def train_cli(model, data, out):
    return main(["train", "--model", str(model), "--data", str(data), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--no-progress",
                 "--cache-dir", str(out.parent / "cache")])


def data_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("data "))


@pytest.fixture(scope="module")
def synthesized(tiny_model_dir, tmp_path_factory):
    """Per tokenizer kind: (model, pairs file), synthesized once through the CLI."""
    done = {}

    def get(kind):
        if kind not in done:
            root = tmp_path_factory.mktemp(f"roundtrip-{kind}")
            prompts = root / "prompts.jsonl"
            prompts.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows()))
            model = tiny_model_dir("llama", kind)
            assert synth_cli(model, prompts, root / "pairs.jsonl") == 0
            done[kind] = model, root / "pairs.jsonl"
        return done[kind]

    return get


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_trained_response_ids_are_the_sampled_ids(synthesized, kind, tmp_path, capsys):
    from transformers import AutoTokenizer

    from prefalign.generation.hf import HFGenerator
    from prefalign.generation.types import PromptItem, SamplingConfig

    model, pairs = synthesized(kind)
    records, _ = load_records(pairs)
    assert len(records) == len(prompt_rows())
    tok = AutoTokenizer.from_pretrained(model)

    # the ids the records carry are the ones the policy samples (the HF back end is seeded per
    # sample, so sampling again gives them again)
    gen = HFGenerator(str(model), device="cpu", dtype="float32", tokenizer=tok)
    items = [PromptItem(i, row["prompt"]) for i, row in enumerate(prompt_rows())]
    samples = gen.generate(items, 3, SamplingConfig(temperature=1.0, max_new_tokens=6), seed=0)
    for record in records:
        sampled = record.meta[FIELD]
        row = samples[record.meta["prompt_index"]]
        picked = [row[record.meta["chosen_index"]], row[record.meta["rejected_index"]]]
        assert sampled["responses"] == [c.response_ids() for c in picked]
        # the text is the continuation as read after the prompt (leading space kept)
        assert [r if isinstance(r, str) else r[0]["content"] for r in record.responses] == \
            [c.text for c in picked]

    # training's own tokenization (the code path prefalign train uses) trains exactly them,
    # each closed as the text would be: EOS after plain text, the template's turn end
    examples, report = tokenize_records(records, tok)
    turn_end = tok("<|im_end|>\n", add_special_tokens=False)["input_ids"]
    for ex, record in zip(examples, records):
        sampled = record.meta[FIELD]
        assert ex.prompt_ids == sampled["prompt"]
        closing = turn_end if isinstance(record.prompt, list) else [tok.eos_token_id]
        assert ex.responses == [ids + closing for ids in sampled["responses"]]
    assert report.responses_from_ids == 2 * len(records)
    assert report.responses_from_text == 0 and not report.sampled_ids_unused

    assert train_cli(model, pairs, tmp_path / "run") == 0
    line = data_line(capsys.readouterr().out)
    assert line.endswith(f"; {2 * len(records)} responses from sampled token ids, 0 from text")


def test_another_tokenizer_trains_on_the_text_and_says_so(synthesized, tiny_model_dir, tmp_path,
                                                          capsys):
    _, pairs = synthesized("bpe")
    n = 2 * len(load_records(pairs)[0])
    assert train_cli(tiny_model_dir("llama", "char"), pairs, tmp_path / "run") == 0
    assert data_line(capsys.readouterr().out).endswith(
        f"; 0 responses from sampled token ids, {n} from text (sampled ids of {n} not used: "
        f"tokenizer_differs: {n})")
