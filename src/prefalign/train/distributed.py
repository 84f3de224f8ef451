"""The distributed setup of a training run: the ``Accelerator`` for how it was launched, and a
record of what actually ran.

``accelerate launch --config_file examples/accelerate/{ddp,fsdp,deepspeed_zero3}.yaml`` or
``torchrun`` starts the processes; accelerate reads the launch's settings from the environment.
Two cases need help, and both are said, never silent:

- **Several CPU processes** (no GPU): accelerate uses gloo only when told ``cpu=True``, and then
  runs DDP even when the launch asked for FSDP (it runs FSDP only on accelerators). FSDP2 itself
  (``torch.distributed.fsdp.fully_shard``) runs over gloo, so for an FSDP2 launch the
  accelerator's state is set to FSDP with the launch's plugin: accelerate's own FSDP2 code then
  shards the model, gathers the state dict and checkpoints, as on GPUs. An FSDP1 launch on CPU
  stays DDP, with a warning.
- **What was asked and what ran differ** (a launch config's mixed precision vs ``--bf16``, FSDP
  asked but one process, ...): each difference is a warning and is kept in the record.

:func:`describe` is the record (``timings.json``'s ``distributed``): type (single process, DDP,
FSDP1/FSDP2, ZeRO-N), processes, backend, device, mixed precision, FSDP's sharding settings,
what the launch asked for and the fallbacks.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

log = logging.getLogger(__name__)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def requested() -> dict[str, Any]:
    """What the launch asked for, from the variables accelerate's launcher sets."""
    out: dict[str, Any] = {"processes": int(os.environ.get("WORLD_SIZE", "1"))}
    if _env_flag("ACCELERATE_USE_FSDP"):
        out["type"] = f"FSDP{os.environ.get('FSDP_VERSION', '1')}"
    elif _env_flag("ACCELERATE_USE_DEEPSPEED"):
        out["type"] = f"ZeRO-{os.environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}"
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        out["mixed_precision"] = os.environ["ACCELERATE_MIXED_PRECISION"]
    return out


def make_accelerator(*, bf16: bool, report_to, project_dir: str):
    """The run's Accelerator (see the module docstring for the CPU cases) and the fallbacks
    from what the launch asked for, each already warned about."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    asked = requested()
    multi_cpu = not torch.cuda.is_available() and asked["processes"] > 1
    # accelerate keeps its settings (mixed precision) in a process-wide singleton; a second
    # run in the same process (a notebook, iterate, the demo) may want other settings. The
    # process group (PartialState) is kept, and with it the FSDP type a CPU run set below:
    # back to what accelerate itself sets, so each run decides again
    AcceleratorState._reset_state(reset_partial_state=False)
    if multi_cpu and PartialState._shared_state.get("distributed_type") == DistributedType.FSDP:
        PartialState._shared_state["distributed_type"] = DistributedType.MULTI_CPU
    accelerator = Accelerator(
        cpu=multi_cpu,
        gradient_accumulation_steps=1,  # accumulation is done (and scaled) by the trainer
        mixed_precision="bf16" if bf16 else "no",
        log_with=report_to or None, project_dir=project_dir)
    fallbacks = []
    if asked.get("type", "").startswith("FSDP") and accelerator.distributed_type == \
            DistributedType.MULTI_CPU:
        if asked["type"] == "FSDP2":
            from accelerate.utils import FullyShardedDataParallelPlugin

            plugin = FullyShardedDataParallelPlugin()  # the launch's settings
            if bf16:  # as accelerate does for FSDP on GPUs
                plugin.set_mixed_precision("bf16")
            accelerator.state.fsdp_plugin = plugin
            # both states, as accelerate sets them for FSDP on GPUs (each AcceleratorState()
            # call copies the PartialState's type)
            accelerator.state.distributed_type = DistributedType.FSDP
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        else:
            fallbacks.append("FSDP1 does not run on CPU processes here; this run is DDP "
                             "(fsdp_version: 2 shards over gloo)")
    ran = describe(accelerator)
    if "type" in asked and asked["type"] != ran["type"] and not fallbacks:
        where = f" over {ran['processes']} processes" if ran["processes"] > 1 else ""
        fallbacks.append(f"the launch asked for {asked['type']}; this run is {ran['type']}"
                         f"{where}: nothing is sharded")
    want = asked.get("mixed_precision")
    if want and want != ran["mixed_precision"]:
        fallbacks.append(f"the launch asked for mixed precision {want}; --bf16 decides here, "
                         f"and this run uses {ran['mixed_precision']}")
    for line in fallbacks:
        if accelerator.is_main_process:
            log.warning("%s", line)
    return accelerator, fallbacks


def fit_deepspeed(accelerator, *, batch_size: int, micro_batches_per_step: int) -> None:
    """Under DeepSpeed: its micro-batch size is the run's per-process batch; a step of several
    micro-batches is refused. The trainer accumulates micro-batches itself, while DeepSpeed's
    engine steps (and divides the loss) by its own accumulation count: the two have not been
    checked together, so the combination is refused, not guessed."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    if micro_batches_per_step != 1:
        raise ValueError("under DeepSpeed a step is one micro-batch here: leave --grad-accum "
                         "and --max-tokens-per-batch at their defaults (or use FSDP2, "
                         "examples/accelerate/fsdp.yaml, which accumulates)")
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    if config.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        config["train_micro_batch_size_per_gpu"] = batch_size
    config["gradient_accumulation_steps"] = 1


def describe(accelerator, fallbacks: list[str] | None = None) -> dict[str, Any]:
    """What ran: the record kept in ``timings.json``."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    out: dict[str, Any] = {"processes": accelerator.num_processes,
                           "device": accelerator.device.type,
                           "mixed_precision": accelerator.mixed_precision}
    if kind == DistributedType.FSDP:
        plugin = accelerator.state.fsdp_plugin
        out["type"] = f"FSDP{plugin.fsdp_version}"
        out["fsdp"] = {"reshard_after_forward": str(plugin.reshard_after_forward),
                       "state_dict_type": str(plugin.state_dict_type).rsplit(".", 1)[-1],
                       "cpu_offload": _offloads(plugin.cpu_offload),
                       "cpu_ram_efficient_loading": bool(plugin.cpu_ram_efficient_loading)}
    elif kind == DistributedType.DEEPSPEED:
        stage = accelerator.state.deepspeed_plugin.zero_stage
        out["type"] = f"ZeRO-{stage}"
    elif accelerator.num_processes > 1:
        out["type"] = "DDP"
    else:
        out["type"] = "single process"
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        out["backend"] = str(torch.distributed.get_backend())
    asked = requested()
    if len(asked) > 1 or asked["processes"] > 1:
        out["requested"] = asked
    if fallbacks:
        out["fallbacks"] = list(fallbacks)
    return out


def _offloads(policy) -> bool:
    """Whether FSDP keeps parameters on the CPU: FSDP1's CPUOffload(offload_params=True) or
    FSDP2's CPUOffloadPolicy (its no-offload policy is a plain OffloadPolicy)."""
    return bool(getattr(policy, "offload_params", False)) or \
        type(policy).__name__ == "CPUOffloadPolicy"


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a (possibly sharded, DTensor) parameter or gradient."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor
