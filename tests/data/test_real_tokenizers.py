"""prefalign's ids against Mistral's own encoder, with a real 131k-vocabulary Tekken tokenizer.

mistral-common ships real Tekken files (``mistral_common/data/tekken_*.json``) and the chat
encoder Mistral's models were trained with (`MistralTokenizer.encode_chat_completion`). Two ways
prefalign meets such a tokenizer:

- the Hugging Face fast tokenizer transformers converts from the Tekken file, with the chat
  template mistral-common generates for it: prefalign renders the template and tokenizes text;
- `MistralCommonBackend`, which transformers 5 loads for a Mistral folder with ``tekken.json``
  when mistral-common is installed: prefalign tokenizes chat data through mistral-common itself.

Either way the prompt ids and the assistant turn's ids must be exactly mistral-common's. v7 is the
format with ``[SYSTEM_PROMPT]`` (Mistral Small 3 and later): the shipped file (v3) with its
version set to v7, as Mistral's v7 tekken.json files are. v3 (system prompt inside the last user
turn) is the shipped file as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mistral_common", reason="needs mistral-common (pip install mistral-common, "
                    "in the test extra): its Tekken files and chat encoder are the reference")

pytest.importorskip("transformers.integrations.mistral.tokenizer",
                    reason="needs transformers 5 (its Tekken conversion and MistralCommonBackend)")

from mistral_common.protocol.instruct.request import ChatCompletionRequest  # noqa: E402
from mistral_common.protocol.instruct.validator import ValidationMode  # noqa: E402
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer  # noqa: E402

from prefalign.data import (  # noqa: E402
    PairRecord, TokenizationError, render_prompt, tokenize_prompt, tokenize_records)

SYSTEM = [{"role": "system", "content": "You are a careful assistant. Answer briefly."}]
USER = [{"role": "user", "content": "What is the capital of France?"}]
HISTORY = [{"role": "user", "content": "Name a prime number."},
           {"role": "assistant", "content": "7 is prime."},
           {"role": "user", "content": "And an even one?"}]
# (prompt messages, assistant content, other assistant content); no trailing spaces in assistant
# contents: mistral-common strips them, the generated template does not (a template difference)
CASES = {
    "single_turn": (USER, "The capital of France is Paris.", "Rome."),
    "system": (SYSTEM + USER, "Paris.", "It is Lyon."),
    "multi_turn": (SYSTEM + HISTORY, "2 is the only even prime.", "4."),
    "multi_turn_no_system": (HISTORY, "Two.", "Nine."),
    "non_ascii": ([{"role": "user", "content": "Wie spät ist es? 日本語で答えて。"}],
                  "午後三時です。Ça va — très bien! 🙂", "Es ist drei Uhr, señor."),
    "code": ([{"role": "user", "content": "Write add(a, b) in Python."}],
             "```python\ndef add(a, b):\n    return a + b\n```", "def add(a,b): return a+b"),
    "leading_space": (USER, " Paris, with a leading space.", "  Two spaces first."),
    "leading_newlines": (USER, "\n\nParis.\n- one\n- two", "\nRome"),
    "tabs_and_crlf": (USER, "\tcol1\tcol2\r\nrow", "x\r\ny"),
}
PLAIN = [("The capital of France is", " Paris.", " Rome."),
         ("Q: 12+35=?\nA:", " 47", " 46\n"),
         ("def add(a, b):\n", "    return a + b\n", "    pass"),
         ("Übersetze: Katze →", " cat 🐈", " chat")]


def _tekken(tmp: Path, version: str) -> Path:
    import mistral_common

    data = Path(mistral_common.__file__).parent / "data"
    raw = json.loads((data / "tekken_240911.json").read_text(encoding="utf-8"))
    raw["config"]["version"] = version
    folder = tmp / f"tekken-{version}"
    folder.mkdir()
    (folder / "tekken.json").write_text(json.dumps(raw), encoding="utf-8")
    return folder


class Reference:
    """mistral-common's encoder for one Tekken file (serving mode for prompts, fine-tuning mode
    for conversations that end with the assistant turn)."""

    def __init__(self, path: Path):
        self.serving = MistralTokenizer.from_file(str(path), mode=ValidationMode.test)
        self.finetuning = MistralTokenizer.from_file(str(path), mode=ValidationMode.finetuning)
        self.text = self.serving.instruct_tokenizer.tokenizer

    def prompt(self, messages):
        request = ChatCompletionRequest.from_openai(messages=messages)
        return self.serving.encode_chat_completion(request).tokens

    def turn(self, messages, content):
        """The assistant turn's ids after ``prompt(messages)`` (checked to be a prefix)."""
        request = ChatCompletionRequest.from_openai(
            messages=messages + [{"role": "assistant", "content": content}])
        full = self.finetuning.encode_chat_completion(request).tokens
        prompt = self.prompt(messages)
        assert full[:len(prompt)] == prompt
        return full[len(prompt):]


@pytest.fixture(scope="session", params=["v7", "v3"])
def tekken(request, tmp_path_factory):
    """(version, folder with tekken.json, mistral-common reference, converted fast tokenizer,
    MistralCommonBackend); built once per session and version (the conversion takes seconds)."""
    from tokenizers import processors
    from transformers import MistralCommonBackend
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    folder = _tekken(tmp_path_factory.mktemp("tekken"), request.param)
    path = folder / "tekken.json"
    fast = convert_tekken_tokenizer(str(path))  # chat template generated by mistral-common
    assert fast.chat_template and len(fast) == 131072
    # plain text gets BOS as the Hub's tokenizer.json files for Tekken models do
    bos = fast.bos_token_id
    fast.backend_tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                      special_tokens=[("<s>", bos)])])
    return request.param, folder, Reference(path), fast, MistralCommonBackend(str(path))


def _backend(tekken, which):
    return tekken[3] if which == "fast" else tekken[4]


@pytest.mark.parametrize("which", ["fast", "mistral_common_backend"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_chat_ids_equal_mistral_commons_encoder(tekken, which, case):
    _, _, ref, *_ = tekken
    tok = _backend(tekken, which)
    prompt, chosen, rejected = CASES[case]
    record = PairRecord(prompt, [{"role": "assistant", "content": chosen}],
                        [{"role": "assistant", "content": rejected}])
    (ex,), report = tokenize_records([record], tok)
    assert ex.prompt_ids == ref.prompt(prompt) == tokenize_prompt(prompt, tok)
    assert ex.prompt_ids.count(tok.bos_token_id) == 1  # the chat format's one BOS
    assert ex.responses == [ref.turn(prompt, chosen), ref.turn(prompt, rejected)]
    for ids in ex.responses:
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
    assert report.boundary_retokenized == 0


def test_system_prompt_argument_equals_a_system_message(tekken):
    _, _, ref, fast, backend = tekken
    record = PairRecord(USER, [{"role": "assistant", "content": "Paris."}],
                        [{"role": "assistant", "content": "Rome."}])
    for tok in (fast, backend):
        (ex,), _ = tokenize_records([record], tok, system=SYSTEM[0]["content"])
        assert ex.prompt_ids == ref.prompt(SYSTEM + USER)
        assert ex.responses[0] == ref.turn(SYSTEM + USER, "Paris.")


@pytest.mark.parametrize("which", ["fast", "mistral_common_backend"])
def test_plain_text_gets_one_bos_and_one_eos(tekken, which):
    _, _, ref, *_ = tekken
    tok = _backend(tekken, which)
    records = [PairRecord(p, c, r) for p, c, r in PLAIN]
    examples, _ = tokenize_records(records, tok)
    for ex, (prompt, *responses) in zip(examples, PLAIN):
        assert ex.prompt_ids[0] == tok.bos_token_id and ex.prompt_ids.count(tok.bos_token_id) == 1
        for ids, text in zip(ex.responses, responses):
            assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
            # the whole sequence is Tekken's own encoding of the text, with BOS and EOS
            assert ex.prompt_ids + ids == ref.text.encode(prompt + text, bos=True, eos=True)


def test_mistral_common_backend_cannot_render_chat_text_and_says_why(tekken):
    backend = tekken[4]
    with pytest.raises(TokenizationError) as info:
        render_prompt(USER, backend)
    message = str(info.value)
    assert "set tokenizer.chat_template" not in message
    assert "mistral-common" in message and "mistral_format=False" in message
    # its chat encoder is used where ids are asked for, so chat data still tokenizes
    assert tokenize_prompt(USER, backend) == tekken[2].prompt(USER)


def test_auto_tokenizer_loads_the_folder_as_mistral_common_backend(tekken):
    """What a user gets from a Mistral folder with tekken.json (transformers 5): the backend
    whose chat data prefalign now encodes through mistral-common."""
    from transformers import AutoTokenizer, MistralConfig

    _, folder, ref, *_ = tekken
    if not (folder / "config.json").exists():
        MistralConfig(vocab_size=131072).save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert type(tok).__name__ == "MistralCommonBackend"
    prompt, chosen, _ = CASES["multi_turn"]
    (ex,), _ = tokenize_records([PairRecord(prompt, [{"role": "assistant", "content": chosen}],
                                            [{"role": "assistant", "content": "4."}])], tok)
    assert (ex.prompt_ids, ex.responses[0]) == (ref.prompt(prompt), ref.turn(prompt, chosen))


def test_sampled_ids_with_mistral_common_backend_are_closed_by_its_eos(tekken):
    """Sampled ids (without the end id) of a chat turn get mistral-common's turn end, ``</s>``."""
    from prefalign.data.sampled import FIELD, SampledIds, decode_continuation, tokenizer_fingerprint

    _, _, ref, _, backend = tekken
    prompt_ids = ref.prompt(USER)
    sampled = [ref.text.encode(" Paris", bos=False, eos=False) + ref.text.encode(
        ".", bos=False, eos=False), ref.text.encode("Rome", bos=False, eos=False)]
    texts = [decode_continuation(backend, prompt_ids, ids) for ids in sampled]
    assert texts == [" Paris.", "Rome"]
    record = PairRecord(USER, [{"role": "assistant", "content": texts[0]}],
                        [{"role": "assistant", "content": texts[1]}],
                        meta={FIELD: SampledIds(tokenizer_fingerprint(backend), prompt_ids,
                                                sampled).to_meta()})
    (ex,), report = tokenize_records([record], backend)
    assert ex.responses == [ids + [backend.eos_token_id] for ids in sampled]
    assert (report.responses_from_ids, report.responses_from_text) == (2, 0)
