"""The life of a training run's OUTPUT folder: claimed (room checked, locked, another run
refused, ``--overwrite`` applied), started (``run.json`` running, ``config.json``), its metrics
log (cut back to a resumed checkpoint), its final files and its end (``run.json`` finished).
Which run a folder holds is decided by `prefalign.train.run_state`; only the main process
writes here, every process reads."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from prefalign.core.durable_log import DurableLog
from prefalign.core.files import OutputError, atomic_path, atomic_write_json, writing
from prefalign.core.locks import exclusive_lock
from prefalign.train import run_state
from prefalign.train.config import TrainConfig

log = logging.getLogger(__name__)


class RunFolder:
    """OUTPUT for one run of ``cfg`` with ``fingerprint``; ``main``: this process writes."""

    def __init__(self, cfg: TrainConfig, fingerprint: dict[str, Any], *, main: bool):
        self.cfg, self.path, self.fingerprint, self.main = cfg, cfg.output_dir, fingerprint, main
        self.metrics_path = self.path / "metrics.jsonl"
        self.metrics_log: DurableLog | None = None
        self._stack = contextlib.ExitStack()

    # ---- claiming ---------------------------------------------------------------------------
    def claim(self, wait_for_everyone) -> run_state.OutputState:
        """Check room, lock, apply --overwrite and decide fresh / resume / finished (the main
        process first, then the others read what it left). Raises RunMismatchError or
        OutputError with one line."""
        cfg, out = self.cfg, self.path
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
                raise OutputError(f"--output {out}: cannot write there "
                                  f"({e.strerror or e})") from None
            if cfg.overwrite:
                removed = run_state.clear_run(out)
                if removed:
                    log.warning("--overwrite: deleted %s from %s", ", ".join(removed), out)
            state = run_state.inspect_output(out, self.fingerprint, resume=cfg.resume)
        wait_for_everyone()
        if not self.main:  # after the main process has cleared what --overwrite deletes
            state = run_state.inspect_output(out, self.fingerprint, resume=cfg.resume)
        self.state = state
        return state

    def finished_metrics(self) -> tuple[int, dict[str, Any]]:
        """The step count and the last metrics (with eval's) of the finished run held here."""
        final: dict[str, Any] = {}
        if self.metrics_path.exists():
            entries = DurableLog(self.metrics_path).entries if self.main else []
            final = dict(entries[-1]) if entries else {}
        eval_path = self.path / "eval.json"
        if eval_path.exists():
            final.update(json.loads(eval_path.read_text()))
        return int(self.state.record.get("steps", final.get("step", 0))), final

    def close(self) -> None:
        """Release the output lock."""
        self._stack.close()

    # ---- the run ----------------------------------------------------------------------------
    def start(self) -> None:
        """The main process: write run.json (status running) and config.json; a fresh start
        first clears what an unfinished earlier attempt of this same run left."""
        if self.state.status == "fresh":
            run_state.clear_run(self.path)
        for stale in (self.path / "checkpoints").glob(".tmp-step-*"):  # a checkpoint cut short
            shutil.rmtree(stale, ignore_errors=True)
        run_state.write_record(self.path, self.fingerprint, "running")
        atomic_write_json(self.path / "config.json", self.cfg.to_dict())

    def open_metrics(self, resumed_step: int | None) -> None:
        """The main process: open the metrics log (a torn last line warned about and cut) and,
        on a resume, drop the lines logged after the checkpoint."""
        if not self.main:
            return
        with writing(self.metrics_path):
            self.metrics_log = DurableLog(self.metrics_path)
        if resumed_step is None:
            return
        kept = [e for e in self.metrics_log.entries if e.get("step", 0) <= resumed_step]
        if len(kept) != len(self.metrics_log.entries):
            with writing(self.metrics_path):
                self.metrics_log.rewrite(kept)

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        with writing(self.metrics_path):
            self.metrics_log.append([metrics])

    def write_json(self, name: str, value: Any) -> None:
        atomic_write_json(self.path / name, value)

    def checkpoint_path(self, step: int) -> Path:
        return self.path / "checkpoints" / f"step-{step}"

    def prune_checkpoints(self) -> None:
        for old in run_state.checkpoints(self.path)[:-self.cfg.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)

    def save_model(self, model, tokenizer, state_dict=None) -> None:
        """The final model in Hugging Face format (``OUTPUT/model``), written to a temporary
        folder and renamed into place: a failed save never leaves a half-written model."""
        with atomic_path(self.path / "model") as tmp:
            model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            tokenizer.save_pretrained(tmp)

    def finish(self, steps: int) -> None:
        run_state.write_record(self.path, self.fingerprint, "finished", steps=steps)
