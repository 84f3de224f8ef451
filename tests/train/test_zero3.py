"""DeepSpeed ZeRO-3 with the shipped examples/accelerate/deepspeed_zero3.yaml. On CPU processes
it does not run (docs/training.md says why); on a GPU machine with deepspeed installed
(bench/gpu_device_check.sh) one ZeRO-3 process gives the losses and final weights of one plain
process. What runs everywhere: the refusal of steps of several micro-batches under DeepSpeed."""

import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch

from launch_helpers import ZERO3_CONFIG, final_weights, metrics, run_cli


def _deepspeed_state(config):
    from accelerate.utils import DistributedType

    plugin = SimpleNamespace(deepspeed_config=config)
    return SimpleNamespace(distributed_type=DistributedType.DEEPSPEED,
                           state=SimpleNamespace(deepspeed_plugin=plugin))


def test_deepspeed_gets_the_micro_batch_and_refuses_accumulation():
    from prefalign.train.distributed import fit_deepspeed

    config = {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto"}
    fit_deepspeed(_deepspeed_state(config), batch_size=4, micro_batches_per_step=1)
    assert config == {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1}
    for micro in (2, 0):  # --grad-accum 2; a token budget (its count varies per step)
        with pytest.raises(ValueError, match="under DeepSpeed a step is one micro-batch"):
            fit_deepspeed(_deepspeed_state({}), batch_size=4, micro_batches_per_step=micro)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="ZeRO-3 does not run on CPU processes "
                    "here (docs/training.md); the GPU machine script runs this")
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not "
                    "installed")
def test_zero3_matches_one_plain_process(tiny_model_dir, pair_file, tmp_path):
    common = ["--model", str(tiny_model_dir("llama")), "--data", str(pair_file), "--objective",
              "sigmoid", "--lr", "1e-2", "--max-steps", "3", "--seed", "5", "--no-progress",
              "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")]
    run_cli(common + ["--output", str(tmp_path / "plain")], 1, cuda=True)
    run_cli(common + ["--output", str(tmp_path / "zero3")], 1, config=ZERO3_CONFIG, cuda=True)
    ran = json.loads((tmp_path / "zero3" / "timings.json").read_text())["distributed"]
    assert ran["type"] == "ZeRO-3"
    for a, b in zip(metrics(tmp_path / "plain"), metrics(tmp_path / "zero3")):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
    wa, wb = final_weights(tmp_path / "plain"), final_weights(tmp_path / "zero3")
    assert set(wa) == set(wb)
    assert all(torch.allclose(wa[k], wb[k].to(wa[k].dtype), atol=1e-4) for k in wa)
