"""Length-dependent RoPE (Phi-3's longrope, dynamic NTK) in packed batches: each sequence is
computed in the regime its own length selects, whatever shares its batch, its row or its
padding. transformers picks the regime once per forward from the largest position id, so packing
used to move short sequences into the long regime (log-probs off by nats)."""

import json
import math

import pytest
import torch

from prefalign.engine import rope
from prefalign.engine.attention import UnsupportedModelError
from prefalign.engine.families import ROPE_SWITCH, by_name
from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack

from test_families import Example, build

LENGTH_FAMILIES = ["phi3-longrope", "llama-dynamic"]


def sharp(model):
    """Queries and keys scaled up, so attention (and with it RoPE) moves the log-probs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("q_proj", "k_proj", "qkv_proj")):
                p.mul_(8.0)
    return model


def straddling_examples():
    """Responses on both sides of the switch, several in one example, one prompt alone past it."""
    ids = lambda n, s: [3 + (7 * i + s) % 90 for i in range(n)]  # noqa: E731
    return [Example(ids(8, 1), [ids(3, 2), ids(9, 3)]),        # 11 | 17 tokens
            Example(ids(5, 4), [ids(2, 5)]),                    # 7
            Example(ids(11, 6), [ids(4, 7), ids(2, 8), ids(1, 9)]),  # 15 | 13 | 12
            Example(ids(16, 10), [ids(2, 11)]),                 # 18: the prompt alone is past it
            Example(ids(2, 12), [ids(12, 13), ids(13, 14)])]    # 14 | 15: at and just past it


@pytest.mark.parametrize("impl", ["sdpa", "eager", "varlen"])
@pytest.mark.parametrize("name", LENGTH_FAMILIES)
def test_every_grouping_and_padding_gives_the_plain_log_probs(name, impl):
    model = sharp(build(by_name(name), impl))
    packed = PackedLogProbModel(model)
    examples = straddling_examples()
    plain = plain_sequence_logps(model, examples)
    split = packed.regimes.split
    layouts = {  # which examples, laid out how
        "one row": ([0, 1, 2, 3, 4], dict(row_capacity=200)),
        "rows, padded": ([0, 1, 2, 3, 4], dict(row_capacity=30, pad_to_multiple_of=8)),
        "reordered": ([4, 2, 0, 3, 1], dict(row_capacity=40)),
        "short, padding past the switch": ([1], dict(pad_to_multiple_of=32)),
    }
    with torch.no_grad():
        for what, (chosen, how) in layouts.items():
            batch = pack([examples[i] for i in chosen], split=split, **how)
            if what.startswith("short"):
                assert batch.position_ids.max() > ROPE_SWITCH
            want = plain[chosen][:, :batch.num_responses]
            got = packed(batch).logps
            torch.testing.assert_close(got[batch.response_mask], want[batch.response_mask],
                                       rtol=1e-5, atol=1e-5, msg=what)


@pytest.mark.parametrize("name", LENGTH_FAMILIES)
def test_the_check_can_fail_one_regime_per_forward_is_wrong(name):
    """With the regimes switched off (transformers' own choice per forward), the same batch is
    off by far more than the tolerance, and a short example alone in a padded row too."""
    model = sharp(build(by_name(name), "sdpa"))
    examples = straddling_examples()
    plain = plain_sequence_logps(model, examples)
    packed = PackedLogProbModel(model)
    packed._regimes = rope.RopeRegimes(torch.nn.Linear(1, 1))  # none
    with torch.no_grad():
        batch = pack(examples, row_capacity=200)
        mixed = packed(batch).logps
        padded = packed(pack(examples[1:2], pad_to_multiple_of=32)).logps[0, 0]
    # 100 times the tolerance of the exact path (tiny random models give small log-prob gaps)
    assert (mixed - plain)[batch.response_mask].abs().max() > 1e-3
    assert (padded - plain[1, 0]).abs() > 1e-3


def test_a_prompt_shared_across_regimes_is_refused():
    packed = PackedLogProbModel(build(by_name("phi3-longrope"), "sdpa"))
    with pytest.raises(ValueError, match="shares a prompt between responses of different RoPE"):
        packed(pack(straddling_examples()[:1]))  # not laid out by packed.pack
    assert [len(g) for g in packed.regimes.split(straddling_examples()[2])] == [1, 2]


def test_a_rope_type_not_known_is_refused(monkeypatch):
    model = build(by_name("phi3-longrope"), "sdpa")
    monkeypatch.setattr(model.model.rotary_emb, "rope_type", "longrope_v2")
    with pytest.raises(UnsupportedModelError, match="RoPE type 'longrope_v2'"):
        PackedLogProbModel(model).regimes


def test_the_rotary_modules_keep_their_state():
    model = build(by_name("llama-dynamic"), "sdpa")
    rotary = model.model.rotary_emb
    before = rotary.inv_freq.clone()
    packed = PackedLogProbModel(model)
    with torch.no_grad():
        packed(packed.pack(straddling_examples()))
    assert torch.equal(rotary.inv_freq, before) and "forward" not in rotary.__dict__


def test_training_with_the_policy_as_its_own_reference_starts_at_ln2(tmp_path):
    """The reference pass groups sequences otherwise than the policy's micro-batches: with one
    regime per forward, step 1's loss was 0.79 instead of ln 2."""
    from transformers import AutoModelForCausalLM

    from prefalign.demo.tiny_models import build_tokenizer
    from prefalign.train import TrainConfig, train

    tok = build_tokenizer("char")
    config = by_name("phi3-longrope").config()
    config.vocab_size, config.pad_token_id = len(tok), tok.pad_token_id
    config.bos_token_id, config.eos_token_id = tok.bos_token_id, tok.eos_token_id
    torch.manual_seed(0)
    sharp(AutoModelForCausalLM.from_config(config)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    # six pairs short enough for the short factors, two past the switch
    rows = [{"prompt": "ab" * (2 + i % 2), "chosen": "c" * (1 + i % 3),
             "rejected": "d" * (2 + i % 4 if i < 6 else 14)} for i in range(8)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train(TrainConfig(model=str(tmp_path / "m"), data=str(tmp_path / "d.jsonl"),
                               output=str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                               batch_size=2, grad_accum=2, max_steps=1, lr=1e-6, progress=False,
                               ref_batch_tokens=64, objective_args={"beta": 1.0}))
    first = json.loads((result.output_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(first["loss"] - math.log(2)) < 1e-6
