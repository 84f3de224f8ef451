"""The trainer on a GPU: FlexAttention, bf16 autocast, gradient checkpointing, TDPO's per-token
KL and QLoRA with bitsandbytes' CUDA kernels, each against the plain fp32 SDPA run on the same
GPU (skipped without CUDA)."""

import json
import math

import pytest
import torch

from prefalign.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run(model, data, out, **kw):
    kw = {"objective": "sigmoid", "batch_size": 4, "lr": 1e-3, "max_steps": 3, **kw}
    result = train(TrainConfig(model=str(model), data=str(data), output=str(out),
                               cache_dir=str(out) + "-cache", progress=False, **kw))
    return result, _metrics(out)


@pytest.mark.parametrize("objective", ["sigmoid", "tdpo2"])
def test_flex_attention_and_checkpointing_train_like_sdpa(tiny_model_dir, pair_file, tmp_path,
                                                          objective):
    model = tiny_model_dir("llama")
    _, plain = _run(model, pair_file, tmp_path / "sdpa", objective=objective)
    _, flex = _run(model, pair_file, tmp_path / "flex", objective=objective,
                   attn_implementation="flex_attention", gradient_checkpointing=True)
    # three optimizer steps: the same losses and log-probs means the same gradients too
    keys = ["loss", "logps/chosen", "logps/rejected"] + (["kl/chosen"] if objective == "tdpo2" else [])
    assert len(plain) == len(flex) == 3
    for a, b in zip(plain, flex):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (key, a["step"])


def test_bf16_autocast_and_bf16_weights_train_close_to_fp32(tiny_model_dir, pair_file, tmp_path):
    model = tiny_model_dir("llama")
    _, fp32 = _run(model, pair_file, tmp_path / "fp32")
    for name, kw in {"autocast": {"bf16": True}, "weights": {"dtype": "bfloat16"}}.items():
        result, run = _run(model, pair_file, tmp_path / name, attn_implementation="flex_attention",
                           **kw)
        for key in ("logps/chosen", "logps/rejected"):
            assert run[0][key] == pytest.approx(fp32[0][key], rel=3e-2), (name, key)
            assert run[0][key] != fp32[0][key], f"{name}: bf16 really ran"
        assert math.isfinite(result.final_metrics["loss"])


def test_qlora_trains_on_cuda(tiny_model_dir, pair_file, tmp_path):
    pytest.importorskip("bitsandbytes")
    result, run = _run(tiny_model_dir("llama"), pair_file, tmp_path / "qlora", qlora=True,
                       lora_r=4, bf16=True)
    assert result.reference == "adapter-disabled"
    # LoRA B starts at zero: policy == reference at step 1, so the DPO loss is ln 2
    assert run[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert run[-1]["loss"] != run[0]["loss"], "the adapter trained"
    assert (result.output_dir / "model" / "adapter_config.json").is_file()
