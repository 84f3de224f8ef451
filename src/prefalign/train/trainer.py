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

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from prefalign import objectives
from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.reference import (AdapterDisabledReference, CachedReference, FrozenReference,
                                        ReferenceSet, Shards)
from prefalign.core.files import writing
from prefalign.train import run_state
from prefalign.train.batches import BatchPlan, by_tokens
from prefalign.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from prefalign.train.config import TrainConfig
from prefalign.train.data_prep import data_summary, prepare_examples
from prefalign.train.distributed import describe, fit_deepspeed, local, make_accelerator
from prefalign.train.forward_step import ForwardStep, MetricSums
from prefalign.train.model_setup import load_causal_lm
from prefalign.train.phases import PhaseTimes
from prefalign.train.preflight import ModelNotFoundError, check_positions, preflight
from prefalign.train.run_folder import RunFolder
from prefalign.train.schedules import make_scheduler

log = logging.getLogger(__name__)
__all__ = ["Trainer", "TrainResult", "train", "NonFiniteError", "ModelNotFoundError"]


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


def _scheduler(cfg: TrainConfig, optimizer, total_steps: int):
    warmup = cfg.warmup_steps or int(math.ceil(cfg.warmup_ratio * total_steps))
    return make_scheduler(optimizer, cfg.scheduler, warmup=warmup, total=total_steps)


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
        # every setting checked against its meaning (and coerced) before anything loads; a
        # config the CLI has just checked is not checked again
        self.cfg = cfg = cfg.checked()
        # called on the main process with (step, metrics) whenever a step's metrics are
        # logged (every --logging-steps, evaluation metrics included): for callers' callbacks
        self.on_log: list[Callable[[int, dict[str, Any]], None]] = []
        # how it was launched (DDP, FSDP2 on GPUs or CPU processes, ZeRO), and what differs
        self.accelerator, self.fallbacks = make_accelerator(
            bf16=cfg.bf16, report_to=cfg.report_to, project_dir=str(cfg.output_dir))
        self.ref_updates = cfg.ref_update != "none"  # TR-DPO: the reference moves
        if self.ref_updates and self.accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
            raise ValueError(f"--ref-update {cfg.ref_update} under sharded training (FSDP, "
                             "ZeRO) is not supported: the reference is a full copy updated from "
                             "the policy's full weights; use DDP or one process")
        fit_deepspeed(self.accelerator, batch_size=cfg.batch_size,
                      micro_batches_per_step=cfg.grad_accum if not cfg.max_tokens_per_batch
                      else 0)
        self.checks = checks = preflight(cfg, processes=self.accelerator.num_processes,
                                         device_type=self.accelerator.device.type)
        self.spec, self.hparams = checks.spec, checks.hparams
        self.reference_kind, self.max_length = checks.reference_kind, checks.max_length
        self.main = self.accelerator.is_main_process
        self.fingerprint = run_state.run_fingerprint(
            cfg, objective=self.spec.name, hparams=self.hparams,
            reference=self.reference_kind, processes=self.accelerator.num_processes,
            max_length=self.max_length)
        self.folder = RunFolder(cfg, self.fingerprint, main=self.main)
        self.done: TrainResult | None = None
        try:
            state = self.folder.claim(self.accelerator.wait_for_everyone)
            if state.status == "finished":
                steps, final = self.folder.finished_metrics()
                self.done = TrainResult(cfg.output_dir, steps, final, self.reference_kind,
                                        already_done=True)
                self.close()
                return
            self._load(cfg)
        except BaseException:
            self.close()
            raise

    def _load(self, cfg: TrainConfig) -> None:
        from accelerate.utils import set_seed
        from transformers import AutoTokenizer

        set_seed(cfg.seed)
        self.phases = PhaseTimes()
        data_cfg = replace(cfg, max_length=self.max_length)
        with self.phases("data"):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model,
                                                           trust_remote_code=cfg.trust_remote_code)
            pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            self.examples, self.data_report = prepare_examples(
                cfg.data, data_cfg, self.spec, self.tokenizer, levels=cfg.order == "curriculum",
                weights=cfg.pair_weight)
            # each example's loss weight (--pair-weight), None: all the same
            self.weights = self.data_report.get("weights")
            check_positions(self.examples, cfg.data, self.max_length)
            # tokens each example puts through the model (its prompt once), for token budgets
            self.example_tokens = [len(ex.prompt_ids) + sum(map(len, ex.responses))
                                   for ex in self.examples]
            self.eval_examples = None
            if cfg.eval_data:
                self.eval_examples, _ = prepare_examples(cfg.eval_data, data_cfg, self.spec,
                                                         self.tokenizer)
                check_positions(self.eval_examples, cfg.eval_data, self.max_length)

        with self.phases("load"):
            self.policy = PackedLogProbModel(load_causal_lm(cfg.model, cfg, for_training=True),
                                             chunk_tokens=cfg.chunk_tokens,
                                             router_aux_loss=self.checks.aux_coef > 0,
                                             value_head="values" in self.spec.reads(self.hparams))
            # the layout its attention kernel wants (kept unwrapped)
            self.forward = ForwardStep(self.spec, self.hparams, pack=self.policy.pack,
                                       pad_id=pad_id, row_tokens=cfg.row_tokens,
                                       token_kl=self.checks.token_kl,
                                       device=self.accelerator.device)
        self.pad_id = pad_id
        self.plan = BatchPlan(len(self.examples), cfg.batch_size, cfg.grad_accum,
                              self.accelerator.num_processes, cfg.seed,
                              levels=self.data_report.get("levels"))
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
            optimizer = torch.optim.AdamW(self._parameter_groups(), lr=cfg.lr,
                                          betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
            # The scheduler is not handed to accelerate: its wrapper steps the schedule once per
            # process, which would decay the learning rate N times faster under N processes. Nor
            # is it registered for accelerate's checkpointing (a pickle): see checkpoint.py.
            self.policy, self.optimizer = self.accelerator.prepare(self.policy, optimizer)
        self.scheduler = _scheduler(cfg, self.optimizer, self.total_steps)
        if self.ref_updates:  # TR-DPO: the models must match now, not at the first update
            self.reference.check_matches(self.accelerator.unwrap_model(self.policy))
            if self.total_steps < cfg.ref_update_steps:
                log.warning("--ref-update %s: the run has %d steps, fewer than "
                            "--ref-update-steps %d: the reference never moves", cfg.ref_update,
                            self.total_steps, cfg.ref_update_steps)
        # running statistics of the objective (BCO's δ, β-DPO's gap moments): updated every
        # micro-batch, reduced over processes, saved with checkpoints
        self.objective_state = objectives.ObjectiveState(self.spec, self.hparams)
        self.step = 0

    def close(self) -> None:
        """Release the output lock (``train()`` does this when it ends)."""
        folder = getattr(self, "folder", None)
        if folder is not None:
            folder.close()

    def __del__(self):
        self.close()

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """The trainable weights; a value head (DRO) in a group of its own, at the objective's
        ``value_lr`` and without weight decay."""
        head = self.policy.value_head
        own = set() if head is None else {id(p) for p in head.parameters()}
        groups = [{"params": [p for p in self.policy.parameters()
                              if p.requires_grad and id(p) not in own]}]
        if head is not None:
            groups.append({"params": list(head.parameters()), "lr": self.hparams["value_lr"],
                           "weight_decay": 0.0})
        return groups

    # ---- reference -------------------------------------------------------------------------
    def _build_reference(self, examples, split: str):
        kind, cfg = self.reference_kind, self.cfg
        if kind == "none":
            return None
        if kind == "adapter-disabled":
            return AdapterDisabledReference(self.policy)
        main, *extras = cfg.ref_models or [cfg.model]
        reference = self._one_reference(main, examples, split)
        if not extras:
            return reference
        return ReferenceSet(reference, [self._one_reference(path, examples, split)
                                        for path in extras])

    def _one_reference(self, ref_path: str, examples, split: str):
        kind, cfg = self.reference_kind, self.cfg
        load = lambda: PackedLogProbModel(  # noqa: E731
            load_causal_lm(ref_path, cfg, for_training=False), chunk_tokens=cfg.chunk_tokens
        ).to(self.accelerator.device)
        if kind == "model":
            return FrozenReference(load())
        cache_dir = cfg.cache_dir or (cfg.output_dir.parent / ".prefalign-cache")
        settings = {"dtype": cfg.dtype, "attn": self.checks.attn_implementation, "split": split}
        # several processes split the pass and all receive the whole cache; the main one writes it
        acc = self.accelerator
        shards = Shards(acc.process_index, acc.num_processes, _all_gather) \
            if acc.num_processes > 1 else None
        return CachedReference.build(load, ref_path, examples, cache_dir=cache_dir,
                                     pad_token_id=self.pad_id, settings=settings,
                                     max_tokens=cfg.ref_batch_tokens,
                                     progress=cfg.progress and self.main, shards=shards)

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        path = self.folder.checkpoint_path(self.step)
        with writing(path):
            save_checkpoint(path, accelerator=self.accelerator, policy=self.policy,
                            optimizer=self.optimizer, scheduler=self.scheduler,
                            state={"step": self.step,
                                   "objective_state": self.objective_state.state_dict()},
                            reference=(self.reference.state_dict() if self.ref_updates
                                       else None))
            if self.main:
                self.folder.prune_checkpoints()
        self.accelerator.wait_for_everyone()

    def _maybe_resume(self) -> None:
        state = self.folder.state
        if state.status != "resume":
            self.folder.open_metrics(None)
            return
        path = state.checkpoint
        saved = load_checkpoint(path, accelerator=self.accelerator, policy=self.policy,
                                optimizer=self.optimizer, scheduler=self.scheduler,
                                reference=self.reference if self.ref_updates else None)
        self.step = int(saved["step"])
        try:
            self.objective_state.load_state_dict(saved.get("objective_state", {}))
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}; it cannot be resumed: use --overwrite to start "
                                  "over") from None
        self.folder.open_metrics(self.step)
        log.info("resumed from %s (step %d)", path, self.step)

    # ---- one optimizer step -----------------------------------------------------------------
    def _run_step(self) -> dict[str, float]:
        acc, cfg, state = self.accelerator, self.cfg, self.objective_state
        started = time.perf_counter()
        plan = self.plan.step(self.step, acc.process_index)
        micro = plan.micro
        if cfg.max_tokens_per_batch:
            micro = by_tokens([i for m in micro for i in m], self.example_tokens,
                              cfg.max_tokens_per_batch)
        global_examples = len(plan.examples)
        # token means over the step divide by the step's mean response length (every rank knows
        # the whole step), not each micro-batch's
        step_mean_length = None
        if self.forward.reads_step_length:
            step_mean_length = sum(len(self.examples[i].responses[0])
                                   for i in plan.examples) / max(1, global_examples)
        # scale: the sum over processes and micro-batches of sum(losses)/global = global mean;
        # DDP averages over processes, hence the num_processes factor. With --pair-weight the
        # mean is weighted: sum(w * losses) / sum of the step's weights (every rank knows them)
        total = (sum(self.weights[i] for i in plan.examples) if self.weights is not None
                 else global_examples)
        scale = acc.num_processes / max(total, 1e-12) if total else 0.0
        sums = MetricSums()
        tokens = bad_losses = 0
        self.policy.train()
        most_micro = len(micro)
        if state.active and acc.num_processes > 1:
            # token budgets can give processes different numbers of micro-batches: one with
            # fewer still takes part in the others' reductions of the running statistics
            most_micro = int(acc.gather(torch.tensor([len(micro)], device=acc.device)).max())
        for m, indices in enumerate(micro):
            last = m == len(micro) - 1
            if not indices:
                if state.active:  # the other processes reduce this micro-batch's statistics
                    state.observe(None, self._sum_over_processes)
                continue
            sync = acc.no_sync(self.policy) if (not last and acc.num_processes > 1) else _null()
            with sync:
                out = self.forward(self.policy, self.examples, indices, self.reference,
                                   state=state, reduce=self._sum_over_processes,
                                   step_mean_length=step_mean_length)
                losses, weights = out.loss.losses, None
                if self.weights is not None:  # a row of weight 0 is left out, whatever its loss
                    weights = torch.tensor([self.weights[i] for i in indices],
                                           device=losses.device, dtype=losses.dtype)
                    losses = torch.where(weights > 0, losses * weights, torch.zeros_like(losses))
                loss = losses.sum() * scale
                if self.checks.aux_coef > 0:
                    # the mean over this process's micro-batches; DDP averages the processes
                    loss = loss + self.checks.aux_coef * out.policy.aux_loss / len(micro)
                    sums.add("aux_loss", out.policy.aux_loss.detach()[None])
                acc.backward(loss)
            tokens += out.batch.num_tokens
            counted = out.loss.losses.detach() if weights is None else \
                out.loss.losses.detach()[weights > 0]
            bad_losses += int((~torch.isfinite(counted)).sum())
            sums.add_loss(out.loss, weights)
        for _ in range(most_micro - len(micro)):
            state.observe(None, self._sum_over_processes)
        clip = cfg.max_grad_norm if cfg.max_grad_norm and cfg.max_grad_norm > 0 else None
        # with clipping off, the norm is still computed (max_norm inf scales by 1) to catch NaN
        norm = acc.clip_grad_norm_(self.policy.parameters(), clip or float("inf"))
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor, the same on every process
            norm = norm.full_tensor()
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
        if self.ref_updates and self.step % cfg.ref_update_steps == 0:  # TR-DPO
            self.reference.update(acc.unwrap_model(self.policy),
                                  1.0 if cfg.ref_update == "hard" else cfg.ref_update_alpha)
        metrics = sums.means(acc)
        totals = acc.reduce(torch.tensor([float(tokens)], device=acc.device), reduction="sum")
        metrics.update(step=self.step, epoch=round(self.step / self.plan.steps_per_epoch, 4),
                       pairs=global_examples, tokens=int(totals.item()), lr=lr,
                       seconds=round(time.perf_counter() - started, 4))
        if grad_norm is not None:
            metrics["grad_norm"] = float(grad_norm)
        return metrics

    def _weights_not_finite(self) -> bool:
        params = [local(p.detach()) for p in self.policy.parameters() if p.requires_grad]
        if not params:
            return False
        peaks = torch._foreach_norm(params, float("inf"))  # NaN propagates through the max
        bad = (~torch.isfinite(torch.stack([n.float() for n in peaks]))).sum().float()
        return self.accelerator.reduce(bad[None], reduction="sum").item() > 0

    def _stop(self, what: str, lr: float) -> None:
        """Stop the run at the step being computed: nothing of it is logged or saved."""
        step = self.step + 1
        found = run_state.checkpoints(self.cfg.output_dir)
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

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        acc, cfg = self.accelerator, self.cfg
        self.policy.eval()
        sums = MetricSums()
        idx = list(range(acc.process_index, len(self.eval_examples), acc.num_processes))
        for s in range(0, len(idx), cfg.batch_size):
            out = self.forward(self.policy, self.eval_examples, idx[s:s + cfg.batch_size],
                               self.eval_reference, state=self.objective_state,
                               update_state=False)
            sums.add_loss(out.loss)
        self.policy.train()
        return {f"eval/{k}": v for k, v in sums.means(acc).items()}

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
            self.folder.start()
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
                self.folder.log_metrics(metrics)
                for hook in self.on_log:
                    hook(self.step, metrics)
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
                self.folder.write_json("eval.json", final_eval)
        with self.phases("save"):
            self.save_model()
        if cfg.report_to:
            acc.end_training()
        if self.main:  # this run's phases (a resumed run counts only its own part)
            self.folder.write_json("timings.json", {
                **self.phases.rounded(), "compiled_graphs": self.phases.compiles(),
                "distributed": describe(acc, self.fallbacks)})
            self.folder.finish(self.step)
        acc.wait_for_everyone()
        reused = bool(getattr(self.reference, "reused", False))
        return TrainResult(cfg.output_dir, self.step, metrics, self.reference_kind, reused,
                           self.phases.rounded(), data_summary(self.data_report))

    def save_model(self) -> None:
        """The final model in Hugging Face format (``OUTPUT/model``), LoRA merged on request;
        weights that are not finite are never saved."""
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
            if state is not None:
                state = {k.removeprefix("model."): v for k, v in state.items()}
            self.folder.save_model(model, self.tokenizer, state)
        acc.wait_for_everyone()


def _all_gather(obj) -> list:
    """Each process's ``obj``, in rank order (torch.distributed's object all-gather)."""
    out: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg`` (checked first, before any model loads); see ``Trainer`` and
    ``prefalign.train.run_state`` for when OUTPUT is resumed, refused or left as it is."""
    return Trainer(cfg).train()
