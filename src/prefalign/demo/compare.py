"""`prefalign demo --compare dpo,ipo,...`: every objective trained on the same synthesized pairs.

Each objective starts from the SFT policy, trains on round 1's West-of-N pairs with the demo's
learning rate, batch and epochs and its own default hyperparameters (`prefalign objectives`),
and is measured the same way: greedy held-out accuracy, win rate and KL against the SFT policy,
sampled response length, and how the chosen responses' log-prob moved on held-out pairs
(negative: likelihood displacement). Unpaired objectives see each pair as one desirable and one
undesirable example; listwise ones see lists of two. An objective that combines several
reference models (mrpo) gets the SFT policy as its main reference and the demo's final policy
(after its rounds) as the second: like the paper's auxiliary reference, a stronger model than the
main one, which the paper finds helps most (the demo's randomly initialised base model would add
nothing but noise).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Sequence

from prefalign import objectives
from prefalign.demo.addition import VERIFIER

from .stages import evaluate, preference_train_args
from prefalign.loop import IterateConfig, score_heldout

COLUMNS = [  # (key, header, format)
    ("objective", "objective", "{}"),
    ("accuracy", "held-out acc.", "{:.1%}"),
    ("gain_points", "vs SFT (points)", "{:+.1f}"),
    ("win_rate", "win rate vs SFT", "{:.1%}"),
    ("kl", "KL to SFT", "{:.3f}"),
    ("length", "mean length", "{:.2f}"),
    ("chosen_logp_delta", "chosen log-prob change", "{:+.3f}"),
    ("train_seconds", "train s", "{:.1f}"),
]


def check_names(names: Sequence[str]) -> list[str]:
    """The objective names, checked before any training starts."""
    out = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        objectives.get(name)  # unknown names fail here, naming the close matches
        out.append(name)
    if not out:
        raise ValueError("--compare needs at least one objective name (e.g. dpo,ipo,simpo)")
    return out


def references(spec: objectives.Objective, sft_model: str,
               extra_reference: str) -> str | list[str]:
    """The reference models an objective trains against: the SFT policy, and for one that
    combines several (its inputs name the extra references' log-probs) ``extra_reference`` too."""
    from prefalign.objectives.multi_reference import EXTRA_FIELDS

    return [sft_model, extra_reference] if EXTRA_FIELDS & spec.inputs else sft_model


def _one(name: str, *, sft_model: str, extra_reference: str, data: Path, pairs: str | None, files,
         out: Path, sizes, cfg) -> dict:
    from prefalign.train import TrainConfig, train

    spec = objectives.get(name)
    refs = references(spec, sft_model, extra_reference)
    t0 = time.perf_counter()
    result = train(TrainConfig(model=sft_model, data=str(data), objective=name, ref_model=refs,
                               output=str(out), seed=cfg.seed, progress=cfg.progress,
                               cache_dir=str(out.parent / ".cache"),
                               **preference_train_args(sizes, {})))
    seconds = time.perf_counter() - t0
    policy = str(result.output_dir / "model")
    greedy = score_heldout(IterateConfig(eval_prompts=str(files.heldout), scorer=VERIFIER,
                                       max_new_tokens=8, batch_size=512, progress=False),
                         policy, out / "greedy_eval.json")
    beta = spec.defaults.get("beta", 0.1)
    metrics = evaluate(policy, sft_model, pairs, files, out / "eval", sizes, cfg, beta)
    return {"objective": name, "accuracy": greedy["pass_rate"],
            "win_rate": metrics.get("winrate/win_rate"), "kl": metrics.get("kl/k3"),
            "length": metrics.get("length/policy/mean"),
            "chosen_logp_delta": metrics.get("displacement/chosen_delta"),
            "train_seconds": round(seconds, 2), "steps": result.steps,
            "references": 1 if isinstance(refs, str) else len(refs)}


def run_compare(names: Sequence[str], *, sft_model: str, extra_reference: str,
                sft_accuracy: float, data: Path, pairs: str | None, files, out: Path, sizes,
                cfg, stages) -> list[dict]:
    if not data.is_file() or not data.read_text().strip():
        raise ValueError(f"{data}: round 1 produced no preference pairs, so there is nothing "
                         "to compare objectives on")
    rows = []
    for name in check_names(names):
        folder = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # a mixture's * and + out of paths
        row = stages.run(f"compare-{folder}", _one, name, sft_model=sft_model,
                         extra_reference=extra_reference, data=data, pairs=pairs, files=files,
                         out=out / folder, sizes=sizes, cfg=cfg)
        row["gain_points"] = round(100 * (row["accuracy"] - sft_accuracy), 1)
        rows.append(row)
    return rows


def caveats(rows: list[dict]) -> list[str]:
    """What a reader must know to compare the rows: an objective that also trained against the
    demo's final policy had help from the later rounds' data."""
    several = [r["objective"] for r in rows if r.get("references", 1) > 1]
    if not several:
        return []
    return [f"{', '.join(several)}: also trained against the demo's final policy as a second "
            "reference, a model that has learned from every round's pairs, so its row is not "
            "comparable with the others' (they see round 1's pairs only)."]


def table_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [fmt.format(row[k]) if row.get(k) is not None else "n/a"
                 for k, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
