"""`run_demo`: the whole loop on a model built from scratch, on a laptop CPU.

Stages (each writes under ``OUT`` and is skipped on a rerun once finished, so an interrupted
demo continues where it stopped)::

    OUT/task/          sft.jsonl, prompts.jsonl, heldout.jsonl        (AdditionTask)
    OUT/base/          a random-weight Llama-style model, char tokenizer
    OUT/sft/           SFT on the noisy demonstrations (`prefalign train --objective sft`)
    OUT/rounds/        `run_iterate`: round-0 = the SFT policy evaluated; round-k = synth
                       (N samples per prompt, verifier, West-of-N) -> train -> eval
    OUT/eval/          held-out preference pairs and `prefalign.eval.evaluate_policy` of the final policy
                       against the SFT policy (KL, lengths, ranking accuracy, win rate)
    OUT/curve/         (unless ``curve=False``) each trained round's over-optimisation curve:
                       verifier accuracy of samples against KL to the round's start, at each
                       of its checkpoints (`prefalign.loop.overoptimisation`)
    OUT/report/        report.md / report.html / summary.json / demo.png (+ curve-round-k.png)
                       and the last round's training report
    OUT/compare/       (with ``compare``) one policy per objective on round 1's data
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from prefalign.core.files import atomic_write_json, atomic_write_text
from prefalign.demo.addition import VERIFIER, AdditionTask, TaskFiles, demonstration_accuracy

from .compare import check_names, run_compare
from .report import write_demo_report
from .config import DemoConfig, DemoSizes
from .stages import DemoResult, difficulty, evaluate, preference_train_args
from prefalign.loop import IterateConfig, run_iterate

log = logging.getLogger(__name__)


class _Stages:
    """Runs named stages once; a finished stage leaves ``OUT/.stages/NAME.json``.

    ``settings`` (everything that changes a stage's result) are written beside them; a rerun
    with other settings in the same folder is refused rather than mixing two runs.
    """

    def __init__(self, out: Path, settings: dict):
        self.dir = out / ".stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seconds: dict[str, float] = {}
        saved = self.dir / "settings.json"
        settings = json.loads(json.dumps(settings, default=str))
        if saved.exists():
            old = json.loads(saved.read_text())
            if old != settings:
                changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise ValueError(f"{out} holds a demo run with other settings ({', '.join(changed)} "
                                 "differ); use another --output, or delete the folder to start over")
        else:
            atomic_write_json(saved, settings)

    def run(self, name: str, fn, *args, **kwargs):
        marker = self.dir / f"{name}.json"
        if marker.exists():
            info = json.loads(marker.read_text())
            self.seconds[name] = info["seconds"]
            log.info("demo: stage %s already done (%.1f s), skipped", name, info["seconds"])
            return info["value"]
        log.info("demo: stage %s", name)
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        atomic_write_json(marker, {"seconds": self.seconds[name], "value": value})
        return value


def _base_model(path: Path, sizes: DemoSizes, seed: int) -> str:
    from prefalign.demo.tiny_models import build_tiny_model

    return str(build_tiny_model(path, family="llama", tokenizer="char", hidden=sizes.hidden,
                                layers=sizes.layers, heads=4, kv_heads=4,
                                intermediate=2 * sizes.hidden, seed=seed))


def _sft(base: str, files: TaskFiles, out: Path, sizes: DemoSizes, cfg: DemoConfig) -> dict:
    from prefalign.train import TrainConfig, train

    result = train(TrainConfig(
        model=base, data=str(files.sft), objective="sft", output=str(out), lr=sizes.sft_lr,
        batch_size=sizes.sft_batch, max_steps=sizes.sft_steps, warmup_steps=50,
        scheduler="constant", seed=cfg.seed, logging_steps=25, save_steps=250,
        progress=cfg.progress))
    return {"model": str(result.output_dir / "model"), "steps": result.steps,
            "final_loss": result.final_metrics.get("loss")}


def _rounds(sft_model: str, files: TaskFiles, out: Path, sizes: DemoSizes,
            cfg: DemoConfig) -> dict:
    result = run_iterate(IterateConfig(
        model=sft_model, prompts=str(files.prompts), eval_prompts=str(files.heldout),
        output=str(out), rounds=sizes.rounds, scorer=VERIFIER, n=sizes.n,
        pairs="west-of-n", temperature=1.0, max_new_tokens=8, seed=cfg.seed, chunk_size=256,
        batch_size=512, objective=cfg.objective,
        train_args=preference_train_args(sizes, cfg.objective_args, checkpoints=True),
        progress=cfg.progress))
    sft_eval = json.loads((out / "round-0" / "eval.json").read_text())
    return {"policy": str(result.policy), "sft_accuracy": sft_eval["pass_rate"],
            "rounds": [{"round": r["round"], "records": r["records"], "trained": r["trained"],
                        "train_steps": r["train_steps"], "accuracy": r["eval"]["pass_rate"],
                        "synth_counts": {k: r["synth_counts"].get(k) for k in
                                         ("generated", "failed", "records", "dropped")}}
                       for r in result.rounds]}


def heldout_pairs(sft_model: str, files: TaskFiles, out: Path, sizes: DemoSizes,
                  cfg: DemoConfig) -> str | None:
    """West-of-N pairs on the held-out prompts from the SFT policy: the preference eval set."""
    from prefalign.synth import SynthConfig, run_synth

    result = run_synth(SynthConfig(
        model=sft_model, prompts=str(files.heldout), output=str(out / "heldout_pairs.jsonl"),
        scorer=VERIFIER, n=sizes.n, pairs="west-of-n", temperature=1.0, max_new_tokens=8,
        seed=cfg.seed + 1000, chunk_size=256, batch_size=512, progress=False))
    if not result.records:  # every sample right, or every sample wrong: nothing to rank
        log.warning("demo: no held-out preference pairs (all samples tied); the pair metrics "
                    "are left out of the evaluation")
        return None
    return str(result.output)


def curves(rounds: dict, files: TaskFiles, rounds_dir: Path, out: Path, sizes: DemoSizes,
           cfg: DemoConfig) -> list[dict]:
    """`overoptimisation_curve` of each trained round (gold: the verifier; KL to the round's
    starting policy) on the first ``sizes.curve_prompts`` held-out prompts: OUT/curve/round-k/
    {curve.json, curve.png}. The x axis is k1: on this task a round's final model can draw one
    sample far likelier under its start, which k3's exp term turns into an outlier."""
    from prefalign.loop.overoptimisation import overoptimisation_curve

    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.jsonl"
    lines = files.heldout.read_text().splitlines(keepends=True)[:sizes.curve_prompts]
    atomic_write_text(prompts, "".join(lines))
    found = []
    for r in rounds["rounds"]:
        if not r["trained"]:
            continue
        curve = overoptimisation_curve(
            rounds_dir / f"round-{r['round']}", prompts, scorer=VERIFIER,
            output=out / f"round-{r['round']}", num_samples=sizes.eval_samples,
            max_new_tokens=8, temperature=1.0, seed=cfg.seed, kl="k1")
        found.append({"round": r["round"], "prompts": len(lines),
                      "num_samples": curve["num_samples"],
                      "kl": curve["kl"],
                      "points": [{k: p[k] for k in ("step", "kl", "kl_k3", "gold")}
                                 for p in curve["points"]]})
    return found


def run_demo(cfg: DemoConfig) -> DemoResult:
    from prefalign import objectives

    sizes = cfg.resolved_sizes()
    if sizes.rounds < 1:
        raise ValueError("the demo needs at least one round of synth -> train")
    # fail before minutes of training, not after (and before settings.json records a typo)
    from prefalign.train.config import check_objective_args

    spec = objectives.get(cfg.objective)
    # names, types and ranges, as training will check them
    cfg.objective_args = check_objective_args(cfg.objective, cfg.objective_args)
    if cfg.compare:
        check_names(cfg.compare)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, {"seed": cfg.seed, "objective": cfg.objective,
                           "objective_args": cfg.objective_args, "sizes": asdict(sizes)})
    task = AdditionTask()
    files = TaskFiles(*(Path(p) for p in stages.run(
        "task", lambda: [str(p) for p in asdict(task.write(
            out / "task", seed=cfg.seed, sft_examples=sizes.sft_examples,
            synth_prompts=sizes.synth_prompts, heldout=sizes.heldout)).values()])))
    base = stages.run("base", _base_model, out / "base", sizes, cfg.seed)
    sft = stages.run("sft", _sft, base, files, out / "sft", sizes, cfg)
    rounds = stages.run("rounds", _rounds, sft["model"], files, out / "rounds", sizes, cfg)
    pairs = stages.run("heldout_pairs", heldout_pairs, sft["model"], files, out / "eval",
                       sizes, cfg)
    beta = {**spec.defaults, **cfg.objective_args}.get("beta", 0.1)
    final = stages.run("eval", evaluate, rounds["policy"], sft["model"], pairs, files,
                       out / "eval" / "final", sizes, cfg, beta)
    curve = (stages.run("curve", curves, rounds, files, out / "rounds", out / "curve",
                         sizes, cfg)
             if cfg.curve else None)
    comparison = None
    if cfg.compare:
        comparison = run_compare(cfg.compare, sft_model=sft["model"],
                                 extra_reference=rounds["policy"],
                                 sft_accuracy=rounds["sft_accuracy"],
                                 data=out / "rounds" / "round-1" / "data.jsonl",
                                 pairs=pairs, files=files, out=out / "compare", sizes=sizes,
                                 cfg=cfg, stages=stages)
    summary = {
        "config": {"quick": cfg.quick, "seed": cfg.seed, "objective": cfg.objective,
                   "objective_args": cfg.objective_args, "sizes": asdict(sizes)},
        "task": {"name": "2-digit addition", "verifier": VERIFIER,
                 "teacher_accuracy": demonstration_accuracy(files.sft),
                 "heldout_prompts": sizes.heldout},
        "sft": sft, "rounds": rounds, "final_eval": final, "curve": curve,
        "difficulty": difficulty(out / "eval" / "final" / "eval.json", pairs),
        "compare": comparison,
        "seconds": dict(stages.seconds), "total_seconds": round(sum(stages.seconds.values()), 1),
    }
    summary["gain_points"] = round(100 * (rounds["rounds"][-1]["accuracy"]
                                          - rounds["sft_accuracy"]), 1)
    write_demo_report(out, summary)
    return DemoResult(out, summary)
