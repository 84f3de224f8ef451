"""Checkpoints without pickles: tensors in safetensors, everything else in JSON.

``OUTPUT/checkpoints/step-N/`` holds

- ``model.safetensors``: the trainable parameters (all of them, or the LoRA adapters); frozen
  weights come from the starting model, which the run fingerprint pins by content;
- ``optimizer.safetensors`` + ``optimizer.json``: the optimizer's per-parameter tensors and its
  parameter groups and scalars;
- ``rng-R.safetensors`` + ``rng-R.json`` per process R: torch CPU/CUDA, Python and NumPy
  random states;
- ``trainer_state.json``, written last: the step, the learning-rate scheduler's state, the
  running statistics, ``format``.

Nothing is read through ``pickle``: accelerate's ``save_state``/``load_state`` are not used
(``register_for_checkpointing`` would store the scheduler as ``custom_checkpoint_0.pkl``, which
accelerate loads with ``weights_only=False``: code execution from a planted file), and any other
file in a checkpoint folder is ignored. A checkpoint is written in a temporary folder and
renamed into place, so a crash leaves either the whole checkpoint or none.

Under FSDP and DeepSpeed the model and optimizer are sharded across processes; there the
shards go through accelerate's ``save_state``/``load_state`` (model and optimizer only: FSDP's
files are read with ``torch.load(weights_only=True)``; DeepSpeed reads its own files with its
own loader), and accelerate's pickled RNG files are removed (the RNG states are written here).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from prefalign.core.files import move_into_place

FORMAT = 2
STATE_FILE = "trainer_state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (another format, another model)."""


def _sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _jsonable(value):
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().tolist(), "dtype": str(value.dtype)[6:]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's JSON")


def _from_json(value):
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_from_json(v) for v in value["__tuple__"])
        if "__tensor__" in value:
            return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _write_json(path: Path, value) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(path))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
    return load_file(str(path))


# ---- RNG -----------------------------------------------------------------------------------
def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import numpy as np

    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    info = {"python": [version, list(internal), gauss],
            "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return tensors, info


def _set_rng_state(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")),
                                       key=lambda k: int(k.split(".")[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = info["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))


# ---- save / load -----------------------------------------------------------------------------
def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(path: Path, *, accelerator, policy, optimizer, scheduler,
                    state: dict[str, Any], reference: dict | None = None) -> None:
    """Write the checkpoint of ``step`` to ``path`` (atomically; every process calls this);
    ``reference``: a reference model's weights that moved during training (TR-DPO), kept as
    ``reference.safetensors``."""
    main = accelerator.is_main_process
    tmp = path.parent / f".tmp-{path.name}"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if _sharded(accelerator):
        accelerator.save_state(str(tmp))  # model + optimizer shards (nothing registered)
        accelerator.wait_for_everyone()
        if main:
            for f in tmp.glob("*.pkl"):  # accelerate's pickled RNG states: ours are below
                f.unlink()
    elif main:
        _save_tensors(dict(_trainable(accelerator.unwrap_model(policy))), tmp / "model.safetensors")
        sd = optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, values in sd["state"].items():
            for name, value in values.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{index}.{name}"] = value
                else:
                    scalars[f"{index}.{name}"] = _jsonable(value)
        _save_tensors(tensors, tmp / "optimizer.safetensors")
        _write_json(tmp / "optimizer.json", {"param_groups": _jsonable(sd["param_groups"]),
                                             "scalars": scalars})
    rank = accelerator.process_index
    rng_tensors, rng_info = _rng_state()
    _save_tensors(rng_tensors, tmp / f"rng-{rank}.safetensors")
    _write_json(tmp / f"rng-{rank}.json", rng_info)
    if main and reference is not None:
        _save_tensors(reference, tmp / "reference.safetensors")
    accelerator.wait_for_everyone()
    if main:
        _write_json(tmp / STATE_FILE, {"format": FORMAT, **state,
                                       "scheduler": _jsonable(scheduler.state_dict())})
        move_into_place(tmp, path)
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, *, accelerator, policy, optimizer, scheduler,
                    reference=None) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states from ``path`` (and a moving
    ``reference``'s weights); returns the trainer state (``step``, ``running``). Only
    safetensors and JSON files are read."""
    state = _read_json(path / STATE_FILE)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a checkpoint of another format ({state.get('format', 1) if isinstance(state, dict) else '?'}; "
            f"this prefalign reads format {FORMAT}, which holds no pickles); it cannot be "
            "resumed: use --overwrite to start over")
    if _sharded(accelerator):
        accelerator.load_state(str(path), load_kwargs={"weights_only": True})
    else:
        model = accelerator.unwrap_model(policy)
        params = _trainable(model)
        stored = _load_tensors(path / "model.safetensors")
        if set(stored) != set(params):
            missing, extra = sorted(set(params) - set(stored)), sorted(set(stored) - set(params))
            raise CheckpointError(f"{path}: its parameters do not match this model's (missing "
                                  f"{missing[:3]}, unexpected {extra[:3]})")
        with torch.no_grad():
            for name, p in params.items():
                if stored[name].shape != p.shape:
                    raise CheckpointError(f"{path}: {name} has shape {tuple(stored[name].shape)}, "
                                          f"the model's is {tuple(p.shape)}")
                p.copy_(stored[name].to(device=p.device, dtype=p.dtype))
        info = _read_json(path / "optimizer.json")
        tensors = _load_tensors(path / "optimizer.safetensors")
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in list(tensors.items()) + [(k, _from_json(v)) for k, v in
                                                   info.get("scalars", {}).items()]:
            index, _, name = key.partition(".")
            per_param.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": per_param,
                                   "param_groups": _from_json(info["param_groups"])})
    scheduler.load_state_dict(_from_json(state["scheduler"]))
    if reference is not None:
        file = path / "reference.safetensors"
        if not file.exists():
            raise CheckpointError(f"{path}: holds no reference weights (reference.safetensors),"
                                  " which a run with --ref-update needs; use --overwrite to "
                                  "start over")
        reference.load_state_dict(_load_tensors(file))
    rank = accelerator.process_index
    rng = path / f"rng-{rank}.safetensors"
    if rng.exists():  # a checkpoint written by fewer processes has none for this rank
        _set_rng_state(_load_tensors(rng), _read_json(path / f"rng-{rank}.json"))
    return state


def export_checkpoint(path: Path, base_model: str, out: Path, *,
                      trust_remote_code: bool = False) -> Path:
    """The policy of checkpoint ``path`` as a Hugging Face model folder ``out``: the starting
    model ``base_model`` with the checkpoint's trained weights (a full-weight, unsharded run;
    LoRA and sharded checkpoints are refused by name)."""
    from transformers import AutoTokenizer

    from prefalign.engine.loading import load_causal_lm

    file = path / "model.safetensors"
    if not file.exists():
        raise CheckpointError(f"{path}: no model.safetensors (a sharded FSDP/ZeRO checkpoint); "
                              "its models cannot be read one by one here")
    stored = {k.removeprefix("model."): v for k, v in _load_tensors(file).items()}
    if any("lora_" in k for k in stored):
        raise CheckpointError(f"{path}: a LoRA checkpoint (adapters only); export needs a run "
                              "that trained all weights")
    model = load_causal_lm(base_model, trust_remote_code=trust_remote_code)
    params = dict(model.named_parameters())
    unknown = sorted(set(stored) - set(params))
    if unknown or set(stored) != set(params):
        missing = sorted(set(params) - set(stored))
        raise CheckpointError(f"{path}: its weights do not match {base_model} (unexpected "
                              f"{unknown[:3]}, missing {missing[:3]})")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(stored[name].to(p.dtype))
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_model, trust_remote_code=trust_remote_code) \
        .save_pretrained(out)
    return out
