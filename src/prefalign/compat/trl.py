"""TRL's Python API on prefalign's trainer: change ``from trl import`` to
``from prefalign.compat.trl import`` and a TRL 1.x DPO or KTO script runs on prefalign.

    from prefalign.compat.trl import DPOConfig, DPOTrainer

Nothing here imports TRL. One table, :data:`FIELDS`, says what every TRL config field becomes
(a :class:`~prefalign.train.TrainConfig` field, an objective hyperparameter) or why it is
refused; :class:`DPOConfig`/:class:`KTOConfig` and :func:`translate_yaml` (``trl dpo --config
FILE`` YAML) both read it. A field left at TRL's default is accepted whatever it is; a field
prefalign cannot honour, set to anything else, is refused with a message naming it. Fields follow
TRL 1.x (``loss_type`` a list, ``truncation_mode`` keep_start); TRL 0.x's ``max_prompt_length``
and ``rpo_alpha`` are accepted as well (docs/trl.md).

The trainers hand prefalign paths: an in-memory model, tokenizer or data set is saved under
``output_dir/prefalign-inputs`` first, prefalign's run folder is ``output_dir/prefalign-run``
(metrics.jsonl, checkpoints, the final model in ``model/``), and after training the trained weights are loaded back
into the model object the caller passed (``trainer.model``), as TRL leaves it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

from prefalign.compat.trl_fields import (_KTO_METRIC_NAMES, FIELDS, TRL_METRIC_NAMES,
                                         UnsupportedFieldError, is_trl_config, translate,
                                         translate_yaml)

log = logging.getLogger(__name__)
__all__ = ["DPOConfig", "DPOTrainer", "KTOConfig", "KTOTrainer", "FIELDS", "translate_yaml",
           "UnsupportedFieldError", "TRL_METRIC_NAMES", "is_trl_config"]


# ---- the configs ---------------------------------------------------------------------------

class _Config:
    """TRL-style config: attributes with TRL's defaults, checked against :data:`FIELDS` when
    made (an unsupported field is refused here, as early as TRL refuses a bad one)."""
    _trainer = "dpo"

    def __init__(self, output_dir: str | None = None, **kwargs: Any):
        if self._trainer == "dpo" and isinstance(kwargs.get("loss_type"), str):
            kwargs["loss_type"] = [kwargs["loss_type"]]  # TRL 1.x accepts a string too
        lt, lw = kwargs.get("loss_type"), kwargs.get("loss_weights")
        if lw is not None and len(lw) != len(lt or ["sigmoid"]):
            raise ValueError(f"loss_weights has {len(lw)} weights for "
                             f"{len(lt or ['sigmoid'])} loss types; give one per loss type")
        given = {"output_dir": output_dir or "trainer_output", **kwargs}
        self._given = given
        self._settings = translate(given, self._trainer)  # refuses here
        for name, spec in FIELDS.items():
            if self._trainer in spec.trainers:
                setattr(self, name, spec.default)
        if self._trainer == "kto":
            self.loss_type = "kto"
        for name, value in given.items():
            setattr(self, name, value)

    def to_train_config_values(self) -> dict[str, Any]:
        """The :class:`~prefalign.train.TrainConfig` values these settings become."""
        out = dict(self._settings)
        out["objective_args"] = dict(out["objective_args"])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._given.items())})"


class DPOConfig(_Config):
    """TRL's ``DPOConfig``: the same field names and TRL 1.x defaults (docs/trl.md)."""
    _trainer = "dpo"


class KTOConfig(_Config):
    """TRL's ``KTOConfig``: the same field names and TRL 1.x defaults (docs/trl.md)."""
    _trainer = "kto"


# ---- the trainers --------------------------------------------------------------------------

def _lora_settings(peft_config) -> dict[str, Any]:
    """A peft ``LoraConfig`` -> prefalign's lora settings; what prefalign has no setting for is
    refused when it differs from LoraConfig's default."""
    if peft_config is None:
        return {}
    if type(peft_config).__name__ != "LoraConfig":
        raise UnsupportedFieldError(f"peft_config: a {type(peft_config).__name__}; prefalign "
                                    "trains LoRA adapters only (peft.LoraConfig)")
    from peft import LoraConfig

    default = LoraConfig()
    mapped = {"r", "lora_alpha", "lora_dropout", "target_modules", "task_type"}
    for f in dataclasses.fields(LoraConfig):
        if f.name in mapped or f.name.startswith("_"):
            continue
        ours, theirs = getattr(peft_config, f.name, None), getattr(default, f.name, None)
        if ours != theirs and f.name not in ("peft_type", "base_model_name_or_path",
                                             "revision", "inference_mode"):
            raise UnsupportedFieldError(f"peft_config.{f.name}={ours!r} is not supported: "
                                        "prefalign's LoRA takes r, lora_alpha, lora_dropout "
                                        "and target_modules")
    targets = peft_config.target_modules
    if targets is None:
        raise UnsupportedFieldError("peft_config.target_modules is None (peft's per-family "
                                    "guess); name the modules or use 'all-linear'")
    targets = targets if isinstance(targets, str) else sorted(targets)
    return {"lora": True, "lora_r": int(peft_config.r), "lora_alpha": peft_config.lora_alpha,
            "lora_dropout": float(peft_config.lora_dropout), "lora_target_modules": targets}


class _Trainer:
    _trainer = "dpo"
    _config_class: type = DPOConfig

    def __init__(self, model=None, ref_model=None, args=None, data_collator=None,
                 train_dataset=None, eval_dataset=None, processing_class=None,
                 compute_metrics=None, callbacks=None, optimizers=(None, None),
                 optimizer_cls_and_kwargs=None, preprocess_logits_for_metrics=None,
                 peft_config=None, **unsupported):
        if unsupported:
            raise UnsupportedFieldError(f"{type(self).__name__} got {', '.join(unsupported)}: "
                                        "not arguments TRL's trainer takes")
        for name, value in (("data_collator", data_collator),
                            ("compute_metrics", compute_metrics),
                            ("optimizer_cls_and_kwargs", optimizer_cls_and_kwargs),
                            ("preprocess_logits_for_metrics", preprocess_logits_for_metrics)):
            if value is not None:
                raise UnsupportedFieldError(f"{name} is not supported: prefalign builds its "
                                            "batches, optimizer and metrics itself")
        if any(o is not None for o in (optimizers or (None, None))):
            raise UnsupportedFieldError("optimizers is not supported: prefalign trains with "
                                        "AdamW and the configured schedule")
        if model is None:
            raise ValueError("model is required: a model object or a model folder / Hub id")
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        self.args = args if args is not None else self._config_class(
            output_dir=f"{_name(model)}-{self._trainer.upper()}")
        if not isinstance(self.args, _Config) or self.args._trainer != self._trainer:
            raise TypeError(f"args must be a prefalign.compat.trl."
                            f"{self._config_class.__name__}, got {type(self.args).__name__}")
        self.model, self.ref_model, self.processing_class = model, ref_model, processing_class
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.peft_config = peft_config
        self.callbacks = list(callbacks or [])
        self._lora = _lora_settings(peft_config)
        from transformers import TrainerControl, TrainerState

        self.state, self.control = TrainerState(), TrainerControl()
        self._inner = None
        self.result = None

    # the inputs, as paths prefalign reads
    def _inputs(self) -> Path:
        return Path(self.args.output_dir) / "prefalign-inputs"

    def _model_path(self, model, name: str, tokenizer=None) -> str:
        if isinstance(model, (str, os.PathLike)):
            if tokenizer is None:
                return str(model)
            folder = self._inputs() / name
            folder.mkdir(parents=True, exist_ok=True)
            src = Path(model)
            if not src.is_dir():
                from transformers import AutoModelForCausalLM

                AutoModelForCausalLM.from_pretrained(str(model)).save_pretrained(folder)
            else:
                for f in src.iterdir():
                    if f.suffix in (".safetensors", ".bin") or f.name in (
                            "config.json", "generation_config.json", "model.safetensors.index.json"):
                        target = folder / f.name
                        if not target.exists():
                            target.symlink_to(f.resolve())
            tokenizer.save_pretrained(folder)
            return str(folder)
        folder = self._inputs() / name
        model.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        elif not (folder / "tokenizer_config.json").exists():
            raise ValueError("processing_class is required with a model object (prefalign "
                             "needs the tokenizer)")
        return str(folder)

    def _data_path(self, dataset, name: str) -> str:
        if isinstance(dataset, (str, os.PathLike)):
            return str(dataset)
        module = type(dataset).__module__ or ""
        if type(dataset).__name__ == "DatasetDict":
            if "train" not in dataset:
                raise ValueError(f"{name}: a DatasetDict without a 'train' split; pass the "
                                 "split to train on")
            dataset = dataset["train"]
        elif not module.startswith("datasets"):
            raise TypeError(f"{name}: a {type(dataset).__name__}; pass a datasets.Dataset, "
                            "a DatasetDict or a data file path")
        folder = self._inputs() / name
        dataset.save_to_disk(str(folder))
        return str(folder)

    def _config(self):
        from prefalign.train.config import TrainConfig

        values = self.args.to_train_config_values()
        values.update(self._lora)
        values["model"] = self._model_path(self.model, "model", self.processing_class)
        values["data"] = self._data_path(self.train_dataset, "train_dataset")
        if self.eval_dataset is not None:
            values["eval_data"] = self._data_path(self.eval_dataset, "eval_dataset")
        if self.ref_model is not None:
            values["ref_model"] = self._model_path(self.ref_model, "ref_model",
                                                   self.processing_class)
        values.setdefault("cache_dir", str(self._inputs() / "cache"))
        # prefalign's run folder sits beside the inputs (it refuses to hold its own inputs)
        values["output"] = str(Path(values["output"]) / "prefalign-run")
        cfg = TrainConfig(**values)
        return cfg.checked()

    def _build(self):
        if self._inner is None:
            from prefalign.train.trainer import Trainer

            self._inner = Trainer(self._config())
            self._inner.on_log.append(self._log)
        return self._inner

    # TRL's metric names next to prefalign's
    def _trl_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:
        out = {k: v for k, v in metrics.items() if isinstance(v, (int, float))
               and not (isinstance(v, float) and math.isnan(v))}
        names = dict(TRL_METRIC_NAMES)
        if self._trainer == "kto":
            names.update(_KTO_METRIC_NAMES)
        for ours, theirs in names.items():
            for prefix in ("", "eval/"):
                if prefix + ours in out:
                    out[(prefix.replace("/", "_")) + theirs] = out[prefix + ours]
        if self._trainer == "kto" and "rewards/chosen" in out and "rewards/rejected" in out:
            out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
        return out

    def _log(self, step: int, metrics: dict[str, Any]) -> None:
        logs = self._trl_metrics(metrics)
        self.state.global_step = step
        self.state.epoch = metrics.get("epoch")
        self.state.log_history.append({**logs, "step": step})
        self._event("on_log", logs=logs)

    def _event(self, name: str, **kw) -> None:
        for cb in self.callbacks:
            cb = cb() if isinstance(cb, type) else cb
            hook = getattr(cb, name, None)
            if hook is not None:
                hook(self.args, self.state, self.control, model=self.model,
                     processing_class=self.processing_class, **kw)

    def train(self, resume_from_checkpoint=None, **kwargs):
        """Train with prefalign; TRL's ``TrainOutput``-like result. Callbacks get
        on_train_begin, on_log (every logged step) and on_train_end."""
        if kwargs:
            raise UnsupportedFieldError(f"train() got {', '.join(kwargs)}: not supported")
        if resume_from_checkpoint not in (None, True, False):
            raise UnsupportedFieldError("resume_from_checkpoint=PATH is not supported: prefalign "
                                        "resumes a run from its own output_dir")
        inner = self._build()
        self.state.max_steps = getattr(inner, "total_steps", 0)
        self._event("on_train_begin")
        self.result = inner.train()
        self.state.global_step = self.result.steps
        self._load_back()
        self._event("on_train_end")
        from transformers.trainer_utils import TrainOutput

        final = self._trl_metrics(self.result.final_metrics)
        return TrainOutput(self.result.steps, float(final.get("loss", float("nan"))), final)

    def _load_back(self) -> None:
        """The trained weights into the caller's model object (``trainer.model``)."""
        folder = Path(self.result.output_dir) / "model"
        if isinstance(self.model, (str, os.PathLike)):
            from transformers import AutoModelForCausalLM

            if self._lora:
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(str(folder))
            else:
                self.model = AutoModelForCausalLM.from_pretrained(str(folder))
            return
        if self._lora:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(folder))
            return
        from safetensors.torch import load_file

        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            state.update(load_file(str(f)))
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        tied = set(getattr(self.model, "_tied_weights_keys", None) or [])
        if unexpected or set(missing) - tied:
            log.warning("loading the trained weights back: missing %s, unexpected %s",
                        missing, unexpected)

    def evaluate(self, eval_dataset=None, **kwargs) -> dict[str, float]:
        """Metrics of ``eval_dataset`` (TRL's ``eval_`` names next to prefalign's ``eval/``)."""
        if eval_dataset is not None and eval_dataset is not self.eval_dataset:
            if self._inner is not None:
                raise UnsupportedFieldError("evaluate(eval_dataset=...) after the trainer was "
                                            "built: pass eval_dataset to the trainer instead")
            self.eval_dataset = eval_dataset
        if self.eval_dataset is None:
            raise ValueError("evaluate() needs an eval_dataset (pass it to the trainer)")
        inner = self._build()
        metrics = self._trl_metrics(inner.evaluate())
        for k in [k for k in metrics if k.startswith("eval/")]:
            metrics["eval_" + k[5:]] = metrics[k]
        return metrics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the (trained) model and tokenizer in Hugging Face format."""
        target = Path(output_dir or self.args.output_dir)
        model = self.model
        if isinstance(model, (str, os.PathLike)):
            raise ValueError("save_model before train(): the model is still a path")
        model.save_pretrained(target, safe_serialization=True)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(target)

    def push_to_hub(self, *args, **kwargs):
        raise RuntimeError("push_to_hub is not supported: prefalign runs offline and never "
                           f"uploads; the trained model is in "
                           f"{Path(self.args.output_dir) / 'prefalign-run' / 'model'}"
                           " (upload it with `huggingface-cli upload` if you mean to)")

    def add_callback(self, callback) -> None:
        self.callbacks.append(callback)


def _name(model) -> str:
    if isinstance(model, (str, os.PathLike)):
        return Path(str(model)).name
    return Path(getattr(getattr(model, "config", None), "_name_or_path", "") or "model").name


class DPOTrainer(_Trainer):
    """TRL's ``DPOTrainer`` on prefalign's trainer (pairwise data: explicit or implicit prompt,
    conversational or plain text)."""
    _trainer = "dpo"
    _config_class = DPOConfig


class KTOTrainer(_Trainer):
    """TRL's ``KTOTrainer`` on prefalign's trainer (unpaired data: prompt, completion, label)."""
    _trainer = "kto"
    _config_class = KTOConfig
