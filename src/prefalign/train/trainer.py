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

import contextlib
import dataclasses
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
from prefalign.engine.loading import check_model, check_same_tokenizer
from prefalign.engine.reference import AdapterDisabledReference, CachedReference, FrozenReference
from prefalign.durable_log import DurableLog
from prefalign.locks import exclusive_lock
from prefalign.train import run_state
from prefalign.train.batches import BatchPlan, by_tokens
from prefalign.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
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
    already_done: bool = False  # OUTPUT held this finished run: nothing was trained


class NonFiniteError(ValueError):
    """A step's loss, gradients or updated weights are NaN or infinite; the run stopped before
    anything of that step was written."""


class ModelNotFoundError(ValueError):
    """``--model`` (or ``--ref-model``) names neither a folder nor a cached hub model."""


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


_checkpoints = run_state.checkpoints


def require_model(name: str, flag: str = "--model") -> None:
    """Refuse, with one line, a model that is neither a local folder nor in the Hugging Face
    cache (and, for a hub id, cannot be fetched)."""
    if run_state.local_model_dir(name) is not None:
        return
    path = Path(name).expanduser()
    if path.exists():
        raise ModelNotFoundError(f"{flag} {name}: is a file; expected a model folder "
                                 "(config.json and weights) or a hub model id")
    reason = "no such folder, and not a model in the local Hugging Face cache"
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"{flag} {name}: {reason}")
    from transformers import AutoConfig

    try:  # a hub id not cached yet: the hub client fetches it, or says why not
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(f"{flag} {name}: {reason}, nor fetched from the hub "
                                 f"({first[:200]})") from None


def model_max_positions(name: str, trust_remote_code: bool = False) -> int | None:
    """The model's position limit (``max_position_embeddings`` or its family's name for it)."""
    from prefalign.engine.loading import model_config

    config = model_config(name, trust_remote_code=trust_remote_code)
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


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


def progress_fields(metrics: dict[str, Any]) -> dict[str, str]:
    """What the progress bar shows of a step: its loss, the reward accuracy where the objective
    has one (SFT and unpaired objectives have none: no ``acc=nan``), and tokens per second."""
    out = {}
    if "loss" in metrics:
        out["loss"] = f"{metrics['loss']:.4f}"
    if "rewards/accuracy" in metrics:
        out["acc"] = f"{metrics['rewards/accuracy']:.2f}"
    if metrics.get("seconds") and "tokens" in metrics:
        out["tok/s"] = f"{metrics['tokens'] / metrics['seconds']:.0f}"
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig):
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer

        # every setting checked against its meaning (and coerced) before anything loads
        self.cfg = cfg = cfg.validate()
        # an OUTPUT that is (or holds, or lies in) a model, or data inside what a run writes
        # there, would be overwritten or deleted: refused before anything else
        run_state.check_inputs_vs_output(
            cfg.output_dir, models={"--model": cfg.model, "--ref-model": cfg.ref_model},
            data={"--data": cfg.data, "--eval-data": cfg.eval_data})
        self.spec = objectives.get(cfg.objective)
        # every hyperparameter's value, defaults merged once (by the registry)
        self.hparams = self.spec.resolve(cfg.objective_args)
        # TDPO: the per-token KL needs the reference's whole next-token distribution at every
        # response position, so the reference runs each step (a cache keeps only log-probs).
        self.token_kl = needs_token_kl(self.spec)
        self.reference_kind = resolve_reference(cfg, self.spec.needs_reference, self.token_kl)
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
        if cfg.max_tokens_per_batch and self.accelerator.num_processes > 1:
            # processes would split a step into different numbers of micro-batches, and the
            # gradient synchronisation of DDP/FSDP expects the same number on each
            raise ValueError("--max-tokens-per-batch is not supported with several processes "
                             "yet; use --batch-size there")
        if cfg.attn_implementation == "flex_attention" and self.accelerator.device.type != "cuda":
            # torch has no FlexAttention backward on CPU, and its compiled CPU forward fails once
            # the packed batch shape changes; say so before any work
            raise ValueError("--attn-implementation flex_attention needs a CUDA GPU (this run is "
                             f"on {self.accelerator.device.type}); use auto (the default)")
        require_model(cfg.model, "--model")
        if cfg.ref_model:
            require_model(cfg.ref_model, "--ref-model")
            if self.reference_kind != "none":  # it scores the policy's token ids
                check_same_tokenizer(cfg.model, cfg.ref_model,
                                     trust_remote_code=cfg.trust_remote_code)
        # refuse a model the engine cannot run exactly before reading any data or weights
        self.aux_coef = _router_aux_coef(cfg)
        self.attn_implementation = check_model(
            cfg.model, trust_remote_code=cfg.trust_remote_code,
            attn_implementation=cfg.attn_implementation, router_aux_loss=self.aux_coef > 0)
        for source, flag in ((cfg.data, "--data"), (cfg.eval_data, "--eval-data")):
            if isinstance(source, (str, os.PathLike)) and source and not Path(source).exists():
                raise FileNotFoundError(f"{flag} {source}: no such file or folder")
        self.max_length = self._effective_max_length()
        self.main = self.accelerator.is_main_process
        self.metrics_path = cfg.output_dir / "metrics.jsonl"
        self.fingerprint = run_state.run_fingerprint(
            cfg, objective=self.spec.name, hparams=self.hparams,
            reference=self.reference_kind, processes=self.accelerator.num_processes,
            max_length=self.max_length)
        self._stack = contextlib.ExitStack()
        self.done: TrainResult | None = None
        try:
            self.output_state = self._claim_output()
        except BaseException:
            self.close()
            raise
        if self.output_state.status == "finished":
            self.done = self._finished_result(self.output_state.record)
            self.close()
            return

        try:
            self._load(cfg, set_seed, AutoTokenizer)
        except BaseException:
            self.close()
            raise

    def _load(self, cfg, set_seed, AutoTokenizer) -> None:
        set_seed(cfg.seed)
        self.phases = PhaseTimes()
        data_cfg = dataclasses.replace(cfg, max_length=self.max_length)
        with self.phases("data"):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model,
                                                           trust_remote_code=cfg.trust_remote_code)
            self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            self.examples, self.data_report = prepare_examples(cfg.data, data_cfg, self.spec,
                                                               self.tokenizer)
            self._check_positions(self.examples, cfg.data)
            # tokens each example puts through the model (its prompt once), for token budgets
            self.example_tokens = [len(ex.prompt_ids) + sum(map(len, ex.responses))
                                   for ex in self.examples]
            self.eval_examples = None
            if cfg.eval_data:
                self.eval_examples, _ = prepare_examples(cfg.eval_data, data_cfg, self.spec,
                                                         self.tokenizer)
                self._check_positions(self.eval_examples, cfg.eval_data)

        with self.phases("load"):
            self.policy = PackedLogProbModel(load_causal_lm(cfg.model, cfg, for_training=True),
                                             chunk_tokens=cfg.chunk_tokens,
                                             router_aux_loss=self.aux_coef > 0)
            self.pack = self.policy.pack  # the layout its attention kernel wants (kept unwrapped)
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
            # process, which would decay the learning rate N times faster under N processes. Nor
            # is it registered for accelerate's checkpointing (a pickle): see checkpoint.py.
            self.policy, self.optimizer = self.accelerator.prepare(self.policy, optimizer)
        self.scheduler = _scheduler(cfg, self.optimizer, self.total_steps)
        self.stats = needed_statistics(self.spec, self.hparams)
        # running statistics of the objective (BCO's δ, β-DPO's gap moments): updated every
        # micro-batch, reduced over processes, saved with checkpoints
        self.objective_state = objectives.ObjectiveState(self.spec, self.hparams)
        self.step = 0

    # ---- the output folder: lock, location, whose run ----------------------------------------
    def _claim_output(self) -> run_state.OutputState:
        cfg, out = self.cfg, self.cfg.output_dir
        if self.main:
            lora_only = (cfg.lora or cfg.qlora) and not cfg.merge_lora
            weights = 0 if lora_only else run_state.model_weight_bytes(cfg.model)
            run_state.check_output_location(
                out, model_bytes=weights,
                checkpoint_bytes=3 * weights if cfg.save_steps and not (cfg.lora or cfg.qlora) else 0)
            try:
                self._stack.enter_context(exclusive_lock(out / run_state.LOCK_FILE,
                                                         what=f"training output {out}"))
            except OSError as e:
                raise run_state.OutputError(f"--output {out}: cannot write there "
                                            f"({e.strerror or e})") from None
            if cfg.overwrite:
                removed = run_state.clear_run(out)
                if removed:
                    log.warning("--overwrite: deleted %s from %s", ", ".join(removed), out)
            state = run_state.inspect_output(out, self.fingerprint, resume=cfg.resume)
        self.accelerator.wait_for_everyone()
        if not self.main:  # after the main process has cleared what --overwrite deletes
            state = run_state.inspect_output(out, self.fingerprint, resume=cfg.resume)
        return state

    def _finished_result(self, record) -> TrainResult:
        final: dict[str, Any] = {}
        if self.metrics_path.exists():
            entries = DurableLog(self.metrics_path).entries if self.main else []
            final = dict(entries[-1]) if entries else {}
        eval_path = self.cfg.output_dir / "eval.json"
        if eval_path.exists():
            final.update(json.loads(eval_path.read_text()))
        steps = int(record.get("steps", final.get("step", 0)))
        return TrainResult(self.cfg.output_dir, steps, final, self.reference_kind,
                           already_done=True)

    def close(self) -> None:
        """Release the output lock (``train()`` does this when it ends)."""
        self._stack.close()

    def __del__(self):
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()

    # ---- positions -------------------------------------------------------------------------------
    def _effective_max_length(self) -> int | None:
        """``max_length`` within the model's positions: the model's limit when unset, clamped
        (with a warning) when larger."""
        cfg = self.cfg
        limits = [(model_max_positions(m, cfg.trust_remote_code), m)
                  for m in (cfg.model, cfg.ref_model) if m]
        limits = [(n, m) for n, m in limits if n]
        if not limits:
            return cfg.max_length
        limit, which = min(limits)
        if cfg.max_length is None:
            chosen = limit
        elif cfg.max_length > limit:
            log.warning("max_length %d is more than the %d positions of %s; using %d (rows longer "
                        "than that are cut or dropped by --truncation %s)", cfg.max_length, limit,
                        which, limit, cfg.truncation)
            chosen = limit
        else:
            chosen = cfg.max_length
        if cfg.max_prompt_length is not None and cfg.max_prompt_length >= chosen:
            raise ValueError(f"max_prompt_length ({cfg.max_prompt_length}) must be below "
                             f"max_length ({chosen}{', the positions of ' + which if chosen == limit else ''})"
                             " to leave room for the response")
        return chosen

    def _check_positions(self, examples, source) -> None:
        if self.max_length is None:
            return
        longest = max(len(ex.prompt_ids) + max(len(r) for r in ex.responses) for ex in examples)
        if longest > self.max_length:  # a guard: truncation should have made this impossible
            raise ValueError(f"{source}: an example of {longest} tokens is longer than "
                             f"max_length {self.max_length} (the model's positions at most)")

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
    def _save_checkpoint(self) -> None:
        path = self.cfg.output_dir / "checkpoints" / f"step-{self.step}"
        with run_state.writing(path):
            save_checkpoint(path, accelerator=self.accelerator, policy=self.policy,
                            optimizer=self.optimizer, scheduler=self.scheduler,
                            state={"step": self.step,
                                   "objective_state": self.objective_state.state_dict()})
            if self.main:
                for old in _checkpoints(self.cfg.output_dir)[:-self.cfg.save_total_limit]:
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def _start_output(self) -> None:
        """The main process: write run.json (status running) and config.json; a fresh start
        first clears what an unfinished earlier attempt of this same run left."""
        cfg, out = self.cfg, self.cfg.output_dir
        if self.output_state.status == "fresh":
            run_state.clear_run(out)
        for stale in (out / "checkpoints").glob(".tmp-step-*"):  # a checkpoint cut short
            shutil.rmtree(stale, ignore_errors=True)
        run_state.write_record(out, self.fingerprint, "running")
        run_state.atomic_write_text(out / "config.json",
                                    json.dumps(cfg.to_dict(), indent=2, default=str))

    def _maybe_resume(self) -> None:
        if self.main:
            with run_state.writing(self.metrics_path):
                self.metrics_log = DurableLog(self.metrics_path)  # a torn last line: warned, cut
        if self.output_state.status != "resume":
            return
        path = self.output_state.checkpoint
        state = load_checkpoint(path, accelerator=self.accelerator, policy=self.policy,
                                optimizer=self.optimizer, scheduler=self.scheduler)
        self.step = int(state["step"])
        try:
            self.objective_state.load_state_dict(state.get("objective_state", {}))
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}; it cannot be resumed: use --overwrite to start "
                                  "over") from None
        if self.main:  # drop lines logged after the checkpoint
            kept = [e for e in self.metrics_log.entries if e.get("step", 0) <= self.step]
            if len(kept) != len(self.metrics_log.entries):
                with run_state.writing(self.metrics_path):
                    self.metrics_log.rewrite(kept)
        log.info("resumed from %s (step %d)", path, self.step)

    # ---- one optimizer step -----------------------------------------------------------------
    def _run_step(self) -> dict[str, float]:
        acc, cfg = self.accelerator, self.cfg
        started = time.perf_counter()
        micro = self.plan.micro_batches(self.step, acc.process_index)
        if cfg.max_tokens_per_batch:
            micro = by_tokens([i for m in micro for i in m], self.example_tokens,
                              cfg.max_tokens_per_batch)
        step_examples = self.plan.step_examples(self.step)
        global_examples = len(step_examples)
        # token means over the step divide by the step's mean response length (every rank knows
        # the whole step), not each micro-batch's; only objectives that read it (SFT's) need it
        step_mean_length = None
        if "step_mean_length" in self.spec.reads(self.hparams):
            step_mean_length = sum(len(self.examples[i].responses[0])
                                   for i in step_examples) / max(1, global_examples)
        # scale: the sum over processes and micro-batches of sum(losses)/global = global mean;
        # DDP averages over processes, hence the num_processes factor.
        scale = acc.num_processes / max(1, global_examples)
        sums: dict[str, list[float]] = {}
        tokens = bad_losses = 0
        self.policy.train()
        most_micro = len(micro)
        if self.objective_state.active and acc.num_processes > 1:
            # token budgets can give processes different numbers of micro-batches: one with
            # fewer still takes part in the others' reductions of the running statistics
            most_micro = int(acc.gather(torch.tensor([len(micro)], device=acc.device)).max())
        for m, indices in enumerate(micro):
            last = m == len(micro) - 1
            if not indices:
                if self.objective_state.active:  # the other processes reduce this micro-batch's statistics
                    self.objective_state.observe(None, self._sum_over_processes)
                continue
            exs = [self.examples[i] for i in indices]
            batch = self.pack(exs, pad_token_id=self.pad_id, row_capacity=cfg.row_tokens).to(acc.device)
            tokens += batch.num_tokens
            ref = self._ref_logps(self.reference, batch, indices)
            sync = acc.no_sync(self.policy) if (not last and acc.num_processes > 1) else _null()
            with sync:
                policy_out = self._policy_logps(batch, ref)
                out = compute_step_loss(self.spec, self.hparams, batch, policy_out, ref,
                                        state=self.objective_state, reduce=self._sum_over_processes,
                                        step_mean_length=step_mean_length)
                loss = out.losses.sum() * scale
                if self.aux_coef > 0:
                    # the mean over this process's micro-batches; DDP averages the processes
                    loss = loss + self.aux_coef * policy_out.aux_loss / len(micro)
                    self._accumulate(sums, "aux_loss", policy_out.aux_loss.detach()[None])
                acc.backward(loss)
            bad_losses += int((~torch.isfinite(out.losses.detach())).sum())
            self._accumulate(sums, "loss", out.losses.detach())
            for name, values in out.metrics.items():
                self._accumulate(sums, name, values)
        for _ in range(most_micro - len(micro)):
            self.objective_state.observe(None, self._sum_over_processes)
        clip = cfg.max_grad_norm if cfg.max_grad_norm and cfg.max_grad_norm > 0 else None
        # with clipping off, the norm is still computed (max_norm inf scales by 1) to catch NaN
        norm = acc.clip_grad_norm_(self.policy.parameters(), clip or float("inf"))
        grad_norm = norm if clip else None
        lr = self.scheduler.get_last_lr()[0]
        bad_loss = acc.reduce(torch.tensor([float(bad_losses)], device=acc.device), reduction="sum")
        if bad_loss.item() > 0:
            self._stop(f"the loss is not finite ({int(bad_loss.item())} examples' losses are NaN "
                       "or infinite)", lr)
        if norm is not None and not math.isfinite(float(norm)):  # DeepSpeed clips internally
            self._stop(f"the gradients are not finite (norm {float(norm)})", lr)
        self.optimizer.step()
        if self._weights_not_finite():
            self._stop("the update made the weights NaN or infinite", lr)
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

    def _weights_not_finite(self) -> bool:
        params = [p.detach() for p in self.policy.parameters() if p.requires_grad]
        if not params:
            return False
        peaks = torch._foreach_norm(params, float("inf"))  # NaN propagates through the max
        bad = (~torch.isfinite(torch.stack([n.float() for n in peaks]))).sum().float()
        return self.accelerator.reduce(bad[None], reduction="sum").item() > 0

    def _stop(self, what: str, lr: float) -> None:
        """Stop the run at the step being computed: nothing of it is logged or saved."""
        step = self.step + 1
        found = _checkpoints(self.cfg.output_dir)
        where = (f"the last checkpoint, {found[-1]}, was written before it and is kept (the same "
                 "command resumes from it)" if found else
                 "no checkpoint was written before it (--save-steps)")
        hps = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in sorted(self.hparams.items())
                        if v is not None and k in ("beta", "label_smoothing", "simpo_gamma"))
        raise NonFiniteError(f"step {step}: {what}; the run stopped before this step's update was "
                             f"kept, nothing of it was written, no model was saved, and {where}. "
                             f"Check the learning rate ({lr:g}) and the objective's "
                             f"hyperparameters ({self.spec.name}{': ' + hps if hps else ''}).")

    def _sum_over_processes(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the processes (the objective's running statistics)."""
        if self.accelerator.num_processes == 1:
            return values
        return self.accelerator.reduce(values.to(self.accelerator.device), reduction="sum").cpu()

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
            batch = self.pack(exs, pad_token_id=self.pad_id, row_capacity=cfg.row_tokens).to(acc.device)
            ref = self._ref_logps(self.eval_reference, batch, indices)
            out = compute_step_loss(self.spec, self.hparams, batch, self._policy_logps(batch, ref),
                                    ref, state=self.objective_state, update_state=False)
            self._accumulate(sums, "loss", out.losses)
            for name, values in out.metrics.items():
                self._accumulate(sums, name, values)
        self.policy.train()
        return {f"eval/{k}": v for k, v in self._reduce(sums).items()}

    # ---- the loop ------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train (or resume) and save; holds the output lock until it returns. A run that
        ``OUTPUT`` holds finished returns at once with ``already_done``."""
        if self.done is not None:
            return self.done
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> TrainResult:
        from tqdm.auto import tqdm

        acc, cfg = self.accelerator, self.cfg
        if self.main:
            self._start_output()
        acc.wait_for_everyone()
        with self.phases("load"):  # a checkpoint's model, optimizer, RNG and objective state
            self._maybe_resume()
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
                with run_state.writing(self.metrics_path):
                    self.metrics_log.append([metrics])
            if cfg.report_to:
                acc.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=self.step)
            bar.update(1)
            bar.set_postfix(progress_fields(metrics))
            if cfg.save_steps and self.step % cfg.save_steps == 0 and self.step < self.total_steps:
                with self.phases("save"):
                    self._save_checkpoint()
        bar.close()
        if self.eval_examples:
            with self.phases("eval"):
                final_eval = self.evaluate()
            metrics.update(final_eval)
            if self.main:
                run_state.atomic_write_text(cfg.output_dir / "eval.json",
                                            json.dumps(final_eval, indent=2))
        with self.phases("save"):
            self.save_model()
        if cfg.report_to:
            acc.end_training()
        if self.main:  # this run's phases (a resumed run counts only its own part)
            run_state.atomic_write_text(cfg.output_dir / "timings.json", json.dumps(
                {**self.phases.rounded(), "compiled_graphs": self.phases.compiles()}, indent=2))
            run_state.write_record(cfg.output_dir, self.fingerprint, "finished", steps=self.step)
        acc.wait_for_everyone()
        reused = bool(getattr(self.reference, "reused", False))
        return TrainResult(cfg.output_dir, self.step, metrics, self.reference_kind, reused,
                           self.phases.rounded(), data_summary(self.data_report))

    def save_model(self) -> None:
        """The final model in Hugging Face format (``OUTPUT/model``), LoRA merged on request.
        Written to a temporary folder and renamed into place, so a failed save never leaves a
        half-written model, and weights that are not finite are never saved."""
        from accelerate.utils import DistributedType

        acc, cfg = self.accelerator, self.cfg
        acc.wait_for_everyone()
        if self._weights_not_finite():  # every step checks this; a last guard before saving
            raise NonFiniteError(f"the weights after step {self.step} are NaN or infinite; "
                                 "no model was saved")
        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        state = acc.get_state_dict(self.policy) if sharded else None  # gathers shards
        model = acc.unwrap_model(self.policy).model
        if cfg.merge_lora and hasattr(model, "merge_and_unload"):
            model, state = model.merge_and_unload(), None
        if self.main:
            out = cfg.output_dir / "model"
            tmp = cfg.output_dir / f".model.tmp-{os.getpid()}"
            if state is not None:
                state = {k.removeprefix("model."): v for k, v in state.items()}
            with run_state.writing(out):
                shutil.rmtree(tmp, ignore_errors=True)
                model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
                if out.exists():
                    shutil.rmtree(out)
                os.replace(tmp, out)
        acc.wait_for_everyone()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg`` (checked first, before any model loads); see ``Trainer`` and
    ``prefalign.train.run_state`` for when OUTPUT is resumed, refused or left as it is."""
    return Trainer(cfg).train()
