"""bf16 (autocast and bf16 weights) and QLoRA through the trainer, on CPU.

These are the GPU settings; CPU runs them too (bf16 autocast, bitsandbytes' CPU 4-bit kernels),
so the plumbing and the gradients are checked here and only the speed needs a GPU.
"""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.layout import pack
from prefalign.train import TrainConfig, train


class _Example:
    def __init__(self, prompt_ids, responses):
        self.prompt_ids, self.responses = prompt_ids, responses


def _first(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def _cfg(model, data, out, **kw):
    return TrainConfig(model=str(model), data=str(data), objective="sigmoid", output=str(out),
                       cache_dir=str(out.parent / "cache"), batch_size=4, lr=1e-3, max_steps=2,
                       progress=False, **kw)


def test_bf16_autocast_matches_fp32_step_one(tiny_model_dir, pair_file, tmp_path):
    model = tiny_model_dir("llama")
    train(_cfg(model, pair_file, tmp_path / "fp32"))
    result = train(_cfg(model, pair_file, tmp_path / "bf16", bf16=True))
    fp32, bf16 = _first(tmp_path / "fp32"), _first(tmp_path / "bf16")
    for key in ("logps/chosen", "logps/rejected"):
        assert bf16[key] == pytest.approx(fp32[key], rel=2e-2)
        assert bf16[key] != fp32[key]  # autocast really ran in bf16
    assert math.isfinite(result.final_metrics["loss"])


def test_bf16_weights_train_and_save_in_bf16(tiny_model_dir, pair_file, tmp_path):
    result = train(_cfg(tiny_model_dir("llama"), pair_file, tmp_path / "run", dtype="bfloat16"))
    assert math.isfinite(result.final_metrics["loss"])
    saved = AutoModelForCausalLM.from_pretrained(result.output_dir / "model", dtype="auto")
    assert saved.get_output_embeddings().weight.dtype == torch.bfloat16


@pytest.fixture
def bnb():
    return pytest.importorskip("bitsandbytes",
                               reason="QLoRA needs bitsandbytes (the test extra installs it)")


def test_qlora_trains_with_the_adapter_disabled_reference(bnb, tiny_model_dir, pair_file,
                                                         tmp_path):
    result = train(_cfg(tiny_model_dir("llama"), pair_file, tmp_path / "run", qlora=True,
                        lora_r=4))
    assert result.reference == "adapter-disabled"
    first = _first(tmp_path / "run")
    # LoRA B starts at zero, so policy == reference at step 1 (up to 4-bit kernels): ln 2
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert math.isfinite(result.final_metrics["loss"])
    assert (result.output_dir / "model" / "adapter_config.json").is_file()


def test_qlora_gradients_equal_the_dequantized_model(bnb, tiny_model_dir):
    """LoRA gradients through frozen 4-bit layers equal those of a float model whose weights
    are the dequantized 4-bit weights (same LoRA init): backprop through the 4-bit matmuls
    is right, not silently zero."""
    from peft import LoraConfig, get_peft_model
    from transformers import BitsAndBytesConfig

    path = tiny_model_dir("llama")
    quantized = AutoModelForCausalLM.from_pretrained(path, quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))
    device = quantized.device  # bitsandbytes puts the 4-bit model on the GPU when there is one
    dense = AutoModelForCausalLM.from_pretrained(path).to(device)
    weights = {f"{name}.weight": bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state).float()
               for name, m in quantized.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert weights
    result = dense.load_state_dict(weights, strict=False)
    assert not result.unexpected_keys
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM",
                      init_lora_weights=False)  # random B, so every LoRA gradient is non-zero
    torch.manual_seed(0)
    q_model = get_peft_model(quantized, lora)
    torch.manual_seed(0)
    d_model = get_peft_model(dense, lora)
    batch = pack([_Example([5, 17, 23, 9], [[30, 31, 32], [40, 41]]),
                  _Example([7, 8], [[50, 51, 52, 53], [60]])]).to(device)
    grads = []
    for model in (q_model, d_model):
        PackedLogProbModel(model)(batch).logps.sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    q_grads, d_grads = grads
    assert set(q_grads) == set(d_grads) and len(d_grads) > 10
    for name, g in d_grads.items():
        assert q_grads[name].norm() > 0, name
        rel = float((q_grads[name] - g).norm() / g.norm())
        assert rel < 2e-2, (name, rel)
