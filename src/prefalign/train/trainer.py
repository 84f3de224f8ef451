"""The training loop, on ``accelerate``.

Why accelerate and not ``transformers.Trainer``: a batch here is a packed, prefix-shared layout
of variable row count, the reference log-probs come from a cache looked up by example index,
and the step-1 metrics must be the policy's log-probs before any update. A small loop over
``Accelerator`` keeps those explicit while accelerate supplies what Trainer would: DDP / FSDP /
DeepSpeed through ``accelerate launch`` or ``torchrun``, mixed precision, checkpoint state
(model, optimizer, scheduler, RNG) and trackers (TensorBoard, W&B).

The loss of an optimizer step is the mean per-example loss over the global batch
(batch_size x grad_accum x processes); each micro-batch's loss is scaled so the summed
gradients equal that mean whatever the split, which is what makes 1 process and 2 processes,
or accumulation and a larger batch, agree.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prefalign import objectives
from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.loading import check_model
from prefalign.engine.layout import pack
from prefalign.engine.reference import AdapterDisabledReference, CachedReference, FrozenReference
from prefalign.train.batches import BatchPlan
from prefalign.train.config import TrainConfig
from prefalign.train.data_prep import data_summary, prepare_examples
from prefalign.train.model_setup import load_causal_lm
from prefalign.train.phases import PhaseTimes
from prefalign.train.schedules import make_scheduler
from prefalign.train.step_loss import compute_step_loss, needed_statistics, needs_token_kl

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_metrics: dict[str, Any]
    reference: str
    reference_reused: bool = False
    phase_seconds: dict[str, float] | None = None  # also in OUTPUT/timings.json
    data_summary: str | None = None  # the training data's counts, printed by prefalign train


def resolve_reference(cfg: TrainConfig, needs_reference: bool, token_kl: bool = False) -> str:
    choice = cfg.reference
    if choice == "auto":
        if not needs_reference:
            return "none"
        if (cfg.lora or cfg.qlora) and not cfg.ref_model:
            return "adapter-disabled"
        return "model" if token_kl else "cache"
    if choice == "cache" and token_kl:
        raise ValueError(f"objective {cfg.objective!r} needs the reference's full next-token "
                         "distribution at every response token (per-token KL), which a cache of "
                         "log-probs does not hold; use --reference model (or adapter-disabled "
                         "with LoRA)")
    if choice == "none" and needs_reference:
        raise ValueError(f"objective {cfg.objective!r} needs a reference model; drop "
                         "--no-reference or choose a reference-free objective (simpo, orpo, cpo, asft, sft)")
    if choice not in ("none", "cache", "model", "adapter-disabled"):
        raise ValueError(f"reference {choice!r} is not one of auto, cache, model, adapter-disabled, none")
    if choice != "none" and not needs_reference:
        log.info("objective %s is reference-free; no reference will be loaded", cfg.objective)
        return "none"
    return choice


def _checkpoints(output: Path) -> list[Path]:
    root = output / "checkpoints"
    if not root.exists():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-") and (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    warmup = cfg.warmup_steps or int(math.ceil(cfg.warmup_ratio * total_steps))
    return make_scheduler(optimizer, cfg.scheduler, warmup=warmup, total=total_steps)


def _router_aux_coef(cfg: TrainConfig) -> float:
    """The MoE router loss weight: the flag, else the model config's when it asks for router
    logits (TRL's rule), else 0."""
    if cfg.router_aux_loss_coef is not None:
        return float(cfg.router_aux_loss_coef)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    if getattr(config, "output_router_logits", False):
        return float(getattr(config, "router_aux_loss_coef", 0.0) or 0.0)
    return 0.0


class Trainer:
    def __init__(self, cfg: TrainConfig):
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.spec = objectives.get(cfg.objective)
        self.hparams = dict(cfg.objective_args)
        # TDPO: the per-token KL needs the reference's whole next-token distribution at every
        # response position, so the reference runs each step (a cache keeps only log-probs).
        self.token_kl = needs_token_kl(self.spec)
        self.reference_kind = resolve_reference(cfg, self.spec.needs_reference, self.token_kl)
        unknown = sorted(set(self.hparams) - set(self.spec.defaults))
        if unknown:
            raise ValueError(f"objective {self.spec.name!r} has no hyperparameter(s) "
                             f"{', '.join(unknown)}; it takes: {', '.join(sorted(self.spec.defaults)) or 'none'}")
        # Several processes without a GPU (torchrun on CPU): accelerate only uses gloo when told.
        multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        # accelerate keeps its settings (mixed precision) in a process-wide singleton; a second
        # run in the same process (a notebook, iterate, the demo) may want other settings. The
        # process group (PartialState) is kept.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=False)
        self.accelerator = Accelerator(
            cpu=multi_cpu,
            gradient_accumulation_steps=1,  # accumulation is done (and scaled) here explicitly
            mixed_precision="bf16" if cfg.bf16 else "no",
            log_with=cfg.report_to or None, project_dir=str(cfg.output_dir))
        if cfg.attn_implementation == "flex_attention" and self.accelerator.device.type != "cuda":
            # torch has no FlexAttention backward on CPU, and its compiled CPU forward fails once
            # the packed batch shape changes; say so before any work
            raise ValueError("--attn-implementation flex_attention needs a CUDA GPU (this run is "
                             f"on {self.accelerator.device.type}); use auto (the default)")
        # refuse a model the engine cannot run exactly before reading any data or weights
        self.aux_coef = _router_aux_coef(cfg)
        self.attn_implementation = check_model(
            cfg.model, trust_remote_code=cfg.trust_remote_code,
            attn_implementation=cfg.attn_implementation, router_aux_loss=self.aux_coef > 0)
        set_seed(cfg.seed)
        self.main = self.accelerator.is_main_process
        self.phases = PhaseTimes()
        with self.phases("data"):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model,
                                                           trust_remote_code=cfg.trust_remote_code)
            self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            self.examples, self.data_report = prepare_examples(cfg.data, cfg, self.spec,
                                                               self.tokenizer)
            self.eval_examples = None
            if cfg.eval_data:
                self.eval_examples, _ = prepare_examples(cfg.eval_data, cfg, self.spec,
                                                         self.tokenizer)

        with self.phases("load"):
            self.policy = PackedLogProbModel(load_causal_lm(cfg.model, cfg, for_training=True),
                                             chunk_tokens=cfg.chunk_tokens,
                                             router_aux_loss=self.aux_coef > 0)
        self.plan = BatchPlan(len(self.examples), cfg.batch_size, cfg.grad_accum,
                              self.accelerator.num_processes, cfg.seed)
        if cfg.max_steps and cfg.max_steps > 0:
            self.total_steps = cfg.max_steps
        else:
            self.total_steps = max(1, int(math.ceil(cfg.epochs * self.plan.steps_per_epoch)))
        with self.phases("reference"):  # loading the reference model, and the cache pass
            self.reference = self._build_reference(self.examples, "train")
            self.eval_reference = None
            if self.eval_examples:  # a model-backed reference serves both splits; a cache is per split
                self.eval_reference = (self.reference
                                       if self.reference_kind in ("model", "adapter-disabled")
                                       else self._build_reference(self.eval_examples, "eval"))

        with self.phases("load"):
            params = [p for p in self.policy.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.adam_betas,
                                          weight_decay=cfg.weight_decay)
            # The scheduler is not handed to accelerate: its wrapper steps the schedule once per
            # process, which would decay the learning rate N times faster under N processes.
            self.policy, self.optimizer = self.accelerator.prepare(self.policy, optimizer)
        self.scheduler = _scheduler(cfg, self.optimizer, self.total_steps)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.stats = needed_statistics(cfg.objective, self.hparams)
        self.step = 0
        self.metrics_path = cfg.output_dir / "metrics.jsonl"

    # ---- reference -------------------------------------------------------------------------
    def _build_reference(self, examples, split: str):
        kind, cfg = self.reference_kind, self.cfg
        if kind == "none":
            return None
        if kind == "adapter-disabled":
            return AdapterDisabledReference(self.policy)
        ref_path = cfg.ref_model or cfg.model
        load = lambda: PackedLogProbModel(  # noqa: E731
            load_causal_lm(ref_path, cfg, for_training=False), chunk_tokens=cfg.chunk_tokens
        ).to(self.accelerator.device)
        if kind == "model":
            return FrozenReference(load())
        cache_dir = cfg.cache_dir or (cfg.output_dir.parent / ".prefalign-cache")
        settings = {"dtype": cfg.dtype, "attn": self.attn_implementation, "split": split}
        # Every process computes (or loads) the same cache; the main process writes it first.
        with self.accelerator.main_process_first():
            return CachedReference.build(load, ref_path, examples, cache_dir=cache_dir,
                                         pad_token_id=self.pad_id, settings=settings,
                                         max_tokens=cfg.ref_batch_tokens,
                                         progress=cfg.progress and self.main)

    def _ref_logps(self, reference, batch, indices):
        if reference is None:
            return None
        if self.token_kl:
            return reference(batch, indices, keep_head=True)
        return reference(batch, indices)

    def _policy_logps(self, batch, ref):
        kl_reference = ref.head if (self.token_kl and ref is not None) else None
        return self.policy(batch, stats=self.stats, kl_reference=kl_reference)

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self, running: dict) -> None:
        path = self.cfg.output_dir / "checkpoints" / f"step-{self.step}"
        self.accelerator.save_state(str(path))
        if self.main:
            state = {"step": self.step, "running": running}
            (path / "trainer_state.json").write_text(json.dumps(state))
            for old in _checkpoints(self.cfg.output_dir)[:-self.cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def _maybe_resume(self) -> dict:
        found = _checkpoints(self.cfg.output_dir) if self.cfg.resume else []
        if not found:
            if self.main and self.metrics_path.exists():
                self.metrics_path.unlink()
            return {}
        path = found[-1]
        self.accelerator.load_state(str(path))
        state = json.loads((path / "trainer_state.json").read_text())
        self.step = int(state["step"])
        if self.main and self.metrics_path.exists():  # drop lines logged after the checkpoint
            lines = [ln for ln in self.metrics_path.read_text().splitlines()
                     if ln.strip() and json.loads(ln)["step"] <= self.step]
            self.metrics_path.write_text("".join(ln + "\n" for ln in lines))
        log.info("resumed from %s (step %d)", path, self.step)
        return state.get("running", {})

    # ---- one optimizer step -----------------------------------------------------------------
    def _run_step(self) -> dict[str, float]:
        acc, cfg = self.accelerator, self.cfg
        started = time.perf_counter()
        micro = self.plan.micro_batches(self.step, acc.process_index)
        global_examples = len(self.plan.step_examples(self.step))
        # scale: the sum over processes and micro-batches of sum(losses)/global = global mean;
        # DDP averages over processes, hence the num_processes factor.
        scale = acc.num_processes / max(1, global_examples)
        sums: dict[str, list[float]] = {}
        tokens = 0
        self.policy.train()
        for m, indices in enumerate(micro):
            last = m == len(micro) - 1
            if not indices:
                continue
            exs = [self.examples[i] for i in indices]
            batch = pack(exs, pad_token_id=self.pad_id, row_capacity=cfg.row_tokens).to(acc.device)
            tokens += batch.num_tokens
            ref = self._ref_logps(self.reference, batch, indices)
            sync = acc.no_sync(self.policy) if (not last and acc.num_processes > 1) else _null()
            with sync:
                policy_out = self._policy_logps(batch, ref)
                out = compute_step_loss(cfg.objective, self.hparams, policy_out, ref, exs)
                loss = out.losses.sum() * scale
                if self.aux_coef > 0:
                    # the mean over this process's micro-batches; DDP averages the processes
                    loss = loss + self.aux_coef * policy_out.aux_loss / len(micro)
                    self._accumulate(sums, "aux_loss", policy_out.aux_loss.detach()[None])
                acc.backward(loss)
            self._accumulate(sums, "loss", out.losses.detach())
            for name, values in out.metrics.items():
                self._accumulate(sums, name, values)
        grad_norm = None
        if cfg.max_grad_norm and cfg.max_grad_norm > 0:
            grad_norm = acc.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics = self._reduce(sums)
        totals = acc.reduce(torch.tensor([float(tokens)], device=acc.device), reduction="sum")
        metrics.update(step=self.step, epoch=round(self.step / self.plan.steps_per_epoch, 4),
                       pairs=global_examples, tokens=int(totals.item()), lr=lr,
                       seconds=round(time.perf_counter() - started, 4))
        if grad_norm is not None:
            metrics["grad_norm"] = float(grad_norm)
        return metrics

    @staticmethod
    def _accumulate(sums, name, values):
        values = values.detach().float()
        finite = ~torch.isnan(values)
        total, count = sums.get(name, [0.0, 0.0])
        sums[name] = [total + float(values[finite].sum()), count + float(finite.sum())]

    def _reduce(self, sums) -> dict[str, float]:
        names = sorted(sums)
        if not names:
            return {}
        local = torch.tensor([sums[n] for n in names], device=self.accelerator.device)
        total = self.accelerator.reduce(local, reduction="sum")
        return {n: (float(t[0] / t[1]) if t[1] > 0 else float("nan")) for n, t in zip(names, total)}

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        acc, cfg = self.accelerator, self.cfg
        self.policy.eval()
        sums: dict[str, list[float]] = {}
        idx = list(range(acc.process_index, len(self.eval_examples), acc.num_processes))
        for s in range(0, len(idx), cfg.batch_size):
            indices = idx[s:s + cfg.batch_size]
            exs = [self.eval_examples[i] for i in indices]
            batch = pack(exs, pad_token_id=self.pad_id, row_capacity=cfg.row_tokens).to(acc.device)
            ref = self._ref_logps(self.eval_reference, batch, indices)
            out = compute_step_loss(cfg.objective, self.hparams, self._policy_logps(batch, ref),
                                    ref, exs)
            self._accumulate(sums, "loss", out.losses)
            for name, values in out.metrics.items():
                self._accumulate(sums, name, values)
        self.policy.train()
        return {f"eval/{k}": v for k, v in self._reduce(sums).items()}

    # ---- the loop ------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        from tqdm.auto import tqdm

        acc, cfg = self.accelerator, self.cfg
        if self.main:
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
            (cfg.output_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
        acc.wait_for_everyone()
        with self.phases("load"):  # a checkpoint's model, optimizer and RNG state
            running = self._maybe_resume()
        if cfg.report_to:
            acc.init_trackers("prefalign", config={k: str(v) for k, v in cfg.to_dict().items()})
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (cfg.progress and self.main),
                   desc=f"train {cfg.objective}", unit="step")
        metrics: dict[str, Any] = {}
        while self.step < self.total_steps:
            with self.phases("steps"):
                metrics = self._run_step()
            if self.eval_examples and cfg.eval_steps and self.step % cfg.eval_steps == 0:
                with self.phases("eval"):
                    metrics.update(self.evaluate())
            if self.main and (self.step % max(1, cfg.logging_steps) == 0 or self.step == 1):
                with open(self.metrics_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(metrics) + "\n")
            if cfg.report_to:
                acc.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=self.step)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}",
                            acc=f"{metrics.get('rewards/accuracy', float('nan')):.2f}")
            if cfg.save_steps and self.step % cfg.save_steps == 0 and self.step < self.total_steps:
                with self.phases("save"):
                    self._save_checkpoint(running)
        bar.close()
        if self.eval_examples:
            with self.phases("eval"):
                final_eval = self.evaluate()
            metrics.update(final_eval)
            if self.main:
                (cfg.output_dir / "eval.json").write_text(json.dumps(final_eval, indent=2))
        with self.phases("save"):
            self.save_model()
        if cfg.report_to:
            acc.end_training()
        if self.main:  # this run's phases (a resumed run counts only its own part)
            (cfg.output_dir / "timings.json").write_text(json.dumps(self.phases.rounded(), indent=2))
        reused = bool(getattr(self.reference, "reused", False))
        return TrainResult(cfg.output_dir, self.step, metrics, self.reference_kind, reused,
                           self.phases.rounded(), data_summary(self.data_report))

    def save_model(self) -> None:
        """The final model in Hugging Face format (``OUTPUT/model``), LoRA merged on request."""
        from accelerate.utils import DistributedType

        acc, cfg = self.accelerator, self.cfg
        acc.wait_for_everyone()
        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        state = acc.get_state_dict(self.policy) if sharded else None  # gathers shards
        model = acc.unwrap_model(self.policy).model
        if cfg.merge_lora and hasattr(model, "merge_and_unload"):
            model, state = model.merge_and_unload(), None
        if self.main:
            out = cfg.output_dir / "model"
            if state is not None:
                state = {k.removeprefix("model."): v for k, v in state.items()}
            model.save_pretrained(out, state_dict=state, safe_serialization=True)
            self.tokenizer.save_pretrained(out)
        acc.wait_for_everyone()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(cfg: TrainConfig) -> TrainResult:
    return Trainer(cfg).train()
