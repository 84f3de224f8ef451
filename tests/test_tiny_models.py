import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.demo.tiny_models import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_loads_like_a_hub_model(tiny_model_dir, family):
    path = tiny_model_dir(family)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == family
    assert model.config.vocab_size == len(tok)
    text = tok.apply_chat_template([{"role": "user", "content": "2+3=?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizers_round_trip_text_exactly(tiny_model_dir, kind):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir("qwen2", kind))
    text = "Hello there,\tworld!\n 12+35=47"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def test_same_seed_gives_same_weights(tmp_path):
    from prefalign.demo.tiny_models import build_tiny_model

    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", seed=4))
    wa, wb, wc = (m.get_output_embeddings().weight for m in (a, b, c))
    assert (wa == wb).all() and not (wa == wc).all()


def test_llama_flavour_adds_bos_once_on_encode(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    assert tok("ab").input_ids[0] == tok.bos_token_id
    assert tok("ab").input_ids.count(tok.bos_token_id) == 1


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma"])
@pytest.mark.parametrize("kind", ["metaspace", "word"])
def test_sentencepiece_and_word_tokenizers_load_as_built(tiny_model_dir, family, kind):
    """The saved tokenizer.json is what transformers loads (no pipeline rebuilt from the vocab),
    and ids decoded on their own lose a leading space, as SentencePiece and word-level ones do."""
    from prefalign.demo.tiny_models import build_tokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir(family, kind))
    built = build_tokenizer(kind, add_bos=family == "llama")
    text = "What is 1+2? The answer is 3."
    assert tok(text).input_ids == built(text).input_ids
    assert tok.decode(tok(" world", add_special_tokens=False).input_ids) == "world"
    chat = tok.apply_chat_template([{"role": "user", "content": "2+3=?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat.endswith("<|im_start|>assistant\n")
    assert tok.unk_token_id not in tok(chat, add_special_tokens=False).input_ids


def test_metaspace_and_word_tokenizers_refuse_qwen2(tmp_path):
    from prefalign.demo.tiny_models import build_tiny_model

    with pytest.raises(ValueError, match="byte-level BPE"):
        build_tiny_model(tmp_path / "m", family="qwen2", tokenizer="word")
