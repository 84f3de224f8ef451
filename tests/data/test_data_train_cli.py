"""`prefalign train` on data-layer edge cases, end to end on a tiny model: implicit-prompt rows
train unchanged; bad rows fail as one line naming file, line and field, or are skipped."""

from __future__ import annotations

import json
import shutil

import pytest

from prefalign.cli import main


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_cli(model, data, out, *flags):
    return main(["train", "--model", str(model), "--data", str(data), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--no-progress",
                 "--cache-dir", str(out.parent / "cache"), *flags])


def hh_rows(n=4):
    return [{"chosen": f"\n\nHuman: {i}+1?\n\nAssistant: It is {i + 1}.",
             "rejected": f"\n\nHuman: {i}+1?\n\nAssistant: It is {i + 2}, I think."}
            for i in range(n)]


def test_implicit_prompt_hh_rows_train_unchanged(tiny_model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "hh.jsonl", hh_rows())
    assert train_cli(tiny_model_dir("llama"), data, tmp_path / "run") == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["pairs"] == 2


def test_implicit_prompt_conversations_train_unchanged(tiny_model_dir, tmp_path):
    user = {"role": "user", "content": "Name a pet."}
    rows = [{"chosen": [user, {"role": "assistant", "content": f"A cat, {i}."}],
             "rejected": [user, {"role": "assistant", "content": f"A car {i}."}]} for i in range(4)]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    assert train_cli(tiny_model_dir("llama"), data, tmp_path / "run") == 0


# Llama 2 / Mistral style: the template raises when roles do not alternate.
ALTERNATING = (
    "{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def model_with_tokenizer(model_dir, path, tokenizer):
    shutil.copytree(model_dir, path)
    tokenizer.save_pretrained(path)
    return path


def chat_rows(n=4):
    user = {"role": "user", "content": "Name a pet."}
    return [{"prompt": [user], "chosen": [{"role": "assistant", "content": f"A cat, {i}."}],
             "rejected": [{"role": "assistant", "content": f"A car {i}."}]} for i in range(n)]


@pytest.fixture
def alternating_model(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    tok.chat_template = ALTERNATING
    return model_with_tokenizer(tiny_model_dir("llama"), tmp_path / "alternating", tok)


def test_a_raising_chat_template_is_one_line_naming_file_line_and_field(
        alternating_model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    rows = chat_rows()
    rows[2]["prompt"] = rows[2]["prompt"] * 2  # user, user
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    assert train_cli(alternating_model, data, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"prefalign train: error: {data}, line 3, field 'prompt': the chat template refused this "
        "conversation: Conversation roles must alternate user/assistant/user/assistant/...")
    assert "Traceback" not in err


def test_on_error_skip_skips_and_counts_rows_the_tokenizer_cannot_take(
        alternating_model, tmp_path, capsys):
    rows = chat_rows(5)
    rows[1]["prompt"] = rows[1]["prompt"] * 2
    rows[3]["rejected"] = rows[3]["rejected"] * 2  # assistant, assistant
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    assert train_cli(alternating_model, data, tmp_path / "run", "--on-error", "skip") == 0
    out = capsys.readouterr().out
    assert (f"data {data}: 5 pairwise rows, 3 used; skipped 2 (chat_template_error: 2); "
            "truncated 0; dropped 0; responses re-tokenized at the boundary 0") in out


def test_on_error_skip_skips_a_row_with_no_exact_token_boundary(tiny_model_dir, tmp_path,
                                                                 capsys, monkeypatch):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # word-level: "a" + "b" is the one word "ab", and no split of it decodes back ("a b")
    words = ["<pad>", "<s>", "<|im_end|>", "<unk>", "a", "b", "ab", "c", "d", "e"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                  eos_token="<|im_end|>")
    model = model_with_tokenizer(tiny_model_dir("llama"), tmp_path / "words", tok)
    rows = [{"prompt": "c", "chosen": " d", "rejected": " e"},
            {"prompt": "a", "chosen": " d", "rejected": "b"},
            {"prompt": "e", "chosen": " c", "rejected": " d a"}]
    data = write_jsonl(tmp_path / "words.jsonl", rows)
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    assert train_cli(model, data, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"prefalign train: error: {data}, line 2, field 'rejected': no exact "
                          "token boundary") and "Traceback" not in err
    assert train_cli(model, data, tmp_path / "b", "--on-error", "skip") == 0
    assert (f"data {data}: 3 pairwise rows, 2 used; skipped 1 (tokenization: 1); truncated 0; "
            "dropped 0; responses re-tokenized at the boundary 0") in capsys.readouterr().out


def test_the_summary_shows_boundary_retokenization_truncation_and_drops(tiny_model_dir, tmp_path,
                                                                        capsys):
    # bpe: "the" + "re" merges into "there" across the boundary, so those responses are
    # tokenized apart from their prompt
    rows = [{"prompt": "I think the", "chosen": "re is a theory.", "rejected": "y are here."},
            {"prompt": "Hello", "chosen": " world!", "rejected": " there."},
            {"prompt": "What is the", "chosen": " capital of France? " * 8, "rejected": " sea."},
            {"prompt": "Thank you", "chosen": " very much.", "rejected": "!"}]
    data = write_jsonl(tmp_path / "bpe.jsonl", rows)
    model = tiny_model_dir("llama", "bpe")
    assert train_cli(model, data, tmp_path / "run", "--max-length", "24") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("data "))
    assert line.endswith("truncated 1; dropped 0; responses re-tokenized at the boundary 1"), line
    assert train_cli(model, data, tmp_path / "drop", "--max-length", "24",
                     "--truncation", "drop") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("data "))
    assert line == (f"data {data}: 4 pairwise rows, 3 used; skipped 0; truncated 0; dropped 1 "
                    "(too_long: 1); responses re-tokenized at the boundary 1")
