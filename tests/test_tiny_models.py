import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign.tiny_models import FAMILIES


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
    from prefalign.tiny_models import build_tiny_model

    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", seed=4))
    wa, wb, wc = (m.get_output_embeddings().weight for m in (a, b, c))
    assert (wa == wb).all() and not (wa == wc).all()


def test_llama_flavour_adds_bos_once_on_encode(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    assert tok("ab").input_ids[0] == tok.bos_token_id
    assert tok("ab").input_ids.count(tok.bos_token_id) == 1
