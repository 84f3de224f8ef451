"""The over-optimisation curve of a training run: how a gold score (and the proxy the run
optimised) move as the policy drifts from its reference, checkpoint by checkpoint (Gao et al.
2023, "Scaling Laws for Reward Model Overoptimization"; the catalog's win rate vs KL budget).

For the starting model (step 0), every checkpoint in ``RUN/checkpoints`` and the final
``RUN/model``, in step order: ``num_samples`` responses per prompt (seeded: the same draws for
every point), KL(π ‖ π_ref) to the run's starting model from those samples (``kl="k3"``, the
default: the non-negative estimator; ``kl="k1"``: the plain mean log-ratio, unbiased and with a
lighter tail when a sample is far likelier under the reference; both are kept in every row as
``kl_k1`` and ``kl_k3``, ``kl`` is the chosen one), the mean gold score of the responses (``--scorer``, any synth scorer
spec: a verifier, a reward model, a judge) and, with ``--proxy``, the proxy's. A proxy that keeps
rising while the gold score falls is over-optimisation. Written: ``curve.json`` (one row per
point) and ``curve.png`` (scores against KL). Checkpoints are exported one at a time into a
temporary folder (`prefalign.train.checkpoint.export_checkpoint`: full-weight, unsharded runs).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from prefalign.core.files import atomic_write_json

KL_ESTIMATORS = ("k1", "k3")  # prefalign.eval.metrics.kl_from_samples's kl/k1, kl/k3


def _points(run: Path) -> list[tuple[int, Path | None]]:
    """(step, checkpoint folder or None for the final model), in step order."""
    found = []
    for path in (run / "checkpoints").glob("step-*") if (run / "checkpoints").is_dir() else ():
        match = re.fullmatch(r"step-(\d+)", path.name)
        if match and (path / "trainer_state.json").exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _mean_score(spec: str, prompts, texts, device) -> float | None:
    from prefalign.generation.types import Completion, PromptItem
    from prefalign.scoring import build_scorer
    from prefalign.synth.job import score_chunk

    items = [p if isinstance(p, PromptItem) else PromptItem(i, p) for i, p in enumerate(prompts)]
    scores = score_chunk(build_scorer(spec, device=device), items,
                         [[Completion(t, 0) for t in row] for row in texts])
    values = [s.value for row in scores for s in row if s is not None and s.value is not None]
    return sum(values) / len(values) if values else None


def overoptimisation_curve(run_dir, prompts, *, scorer: str, proxy: str | None = None,
                           output=None, num_samples: int = 4, max_new_tokens: int = 64,
                           temperature: float = 1.0, seed: int = 0, kl: str = "k3",
                           device: str | None = None) -> dict[str, Any]:
    from prefalign.eval.plots import line_plot
    from prefalign.eval.policy import evaluate_policy
    from prefalign.synth.prompts import read_prompts
    from prefalign.train.checkpoint import export_checkpoint

    if kl not in KL_ESTIMATORS:
        raise ValueError(f"kl={kl!r}: the KL estimator is one of {', '.join(KL_ESTIMATORS)}")
    run = Path(run_dir)
    config_file = run / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: give a folder `prefalign train` wrote")
    config = json.loads(config_file.read_text())
    if config.get("lora") or config.get("qlora"):
        raise ValueError(f"{run}: a LoRA run; its checkpoints hold adapters only, which this "
                         "curve does not export yet")
    start = config["model"]
    prompt_list = read_prompts(prompts)
    if not prompt_list:
        raise ValueError(f"{prompts}: no prompts")
    out = Path(output) if output else run / "curve"
    steps = [(0, None, start)] + [(s, p, None) for s, p in _points(run)]
    if (run / "model").is_dir():
        final_step = json.loads((run / "run.json").read_text()).get("steps") \
            if (run / "run.json").is_file() else None
        steps.append((final_step, None, str(run / "model")))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for step, checkpoint, model in steps:
            if checkpoint is not None:
                model = str(export_checkpoint(checkpoint, start, Path(tmp) / f"step-{step}"))
            result = evaluate_policy(model, ref_path=start, prompts=prompts,
                                     num_samples=num_samples, max_new_tokens=max_new_tokens,
                                     temperature=temperature, seed=seed, device=device)
            texts = [s["responses"] for s in result["samples"]]
            metrics = result["metrics"]
            row = {"step": step, "model": "start" if step == 0 else
                   (str(checkpoint) if checkpoint else model),
                   "kl": metrics[f"kl/{kl}"], "kl_k1": metrics["kl/k1"],
                   "kl_k3": metrics["kl/k3"],
                   "gold": _mean_score(scorer, prompt_list, texts, device)}
            if proxy:
                row["proxy"] = _mean_score(proxy, prompt_list, texts, device)
            rows.append(row)
            if checkpoint is not None:  # one exported model on disk at a time
                import shutil

                shutil.rmtree(model, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    series = {"gold": [r["gold"] for r in rows]}
    if proxy:
        series["proxy"] = [r["proxy"] for r in rows]
    line_plot(out / "curve.png", [r["kl"] for r in rows], series,
              title="Scores against KL to the reference", xlabel=f"KL(π ‖ π_ref), {kl} estimate",
              ylabel="mean score")
    summary = {"run": str(run), "scorer": scorer, "proxy": proxy, "num_samples": num_samples,
               "seed": seed, "kl": kl, "points": rows}
    atomic_write_json(out / "curve.json", summary)
    return summary
