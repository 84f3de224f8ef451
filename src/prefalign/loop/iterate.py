"""`run_iterate`: K rounds of synth -> train -> eval, each sampling from the newest policy
(iterative / online DPO, as in RLHFlow's Online-RLHF and Xiong et al. 2024).

Layout::

    OUT/round-0/eval.json  round.json     the starting policy, evaluated
    OUT/round-k/data.jsonl (+ .manifest.json, .progress.jsonl)   synth from round k-1's policy
    OUT/round-k/model/  metrics.jsonl  config.json                 `prefalign train` output
    OUT/round-k/eval.json                 the new policy on the held-out prompts
    OUT/round-k/round.start.json          written first: what the round started from
    OUT/round-k/round.json                written last: the round is finished

A rerun skips finished rounds (those with ``round.json``) and resumes an unfinished one: its synth
job resumes from its durable log and training from its last checkpoint (``save_steps``). A
finished round is reused only when its fingerprint matches: the starting policy (by content),
the prompts, scorer, sampling, pairing, seed, objective, training and eval settings
(:func:`round_fingerprint`; ``rounds``, ``output``, ``device``, ``chunk_size`` and progress bars
do not count, so raising ``rounds`` continues a finished loop). A round made with other
settings stops the rerun with one line naming what differs; use a new ``--output`` (or delete
the old one) to start over. Round k
samples with seed ``seed + k`` so rounds see different samples. A round whose data holds no
records (every response tied) trains nothing and keeps the previous policy; ``round.json`` says so.

Eval: ``eval_n`` responses (greedy by default) per held-out prompt from the round's policy,
scored by the same scorer: ``mean_score`` over the scored responses and ``pass_rate``, the share of
all responses scoring at least ``pass_threshold`` (verifier accuracy for a 0/1 verifier).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.core import identity
from prefalign.core.files import atomic_write_json
from prefalign.scoring.model_refs import names_models, resolve_model_refs
from prefalign.generation import make_generator
from prefalign.generation.types import SamplingConfig, check_sampling
from prefalign.core.settings import values_of
from prefalign.generation.settings import BackendSettings, SamplingSettings
from prefalign.synth import SynthConfig, SynthSettings
from prefalign.synth.job import run_synth, score_chunk, scorer_files

from .config import IterateConfig, round_backends
from prefalign.synth.prompts import read_prompts


@dataclass
class IterateResult:
    output: Path
    policy: Path
    rounds: list[dict[str, Any]]


def reference_of(cfg: IterateConfig) -> str:
    """The loop's reference, what ``@ref`` names: train_args' ref_model (the main one, the
    first, where it lists several), else the start."""
    given = cfg.train_args.get("ref_model")
    if isinstance(given, list):
        given = given[0] if given else None
    return str(given or cfg.model)


def round_scorer_spec(spec: str, cfg: IterateConfig, policy: str | Path,
                      where: str = "--scorer") -> str:
    """``spec`` with ``@policy`` = ``policy`` (the round's) and ``@ref`` = the loop's reference."""
    return resolve_model_refs(spec, policy=str(policy), ref=reference_of(cfg), where=where)


def round_pool(cfg: IterateConfig, policy: str | Path) -> list[str]:
    """The ``--pool`` members of a round, ``@policy`` its policy and ``@ref`` the reference."""
    return [round_scorer_spec(member, cfg, policy, "--pool") for member in cfg.pool]


def check_pool(cfg: IterateConfig) -> None:
    """A pool samples from each round's policy in one member at least, and --n, when given,
    is the members' sum."""
    from prefalign.generation.pool import pool_size

    if not any(names_models(m) and "@policy" in m for m in cfg.pool):
        raise ValueError("iterate --pool: no member samples from the round's policy; name it "
                         "@policy in one (e.g. policy=4*@policy)")
    pool_size(round_pool(cfg, cfg.model), cfg.n, "n" in cfg.origins)


def _eval_scorer(cfg: IterateConfig, policy: str | Path):
    if cfg.scorer_obj is not None and not cfg.eval_scorer:
        return cfg.scorer_obj
    from prefalign.scoring import build_scorer

    spec, flag = (cfg.eval_scorer, "--eval-scorer") if cfg.eval_scorer else (cfg.scorer,
                                                                            "--scorer")
    return build_scorer(round_scorer_spec(spec, cfg, policy, flag), device=cfg.device)


def check_backend(cfg: IterateConfig) -> None:
    from prefalign.generation import registry

    usable = " or ".join(round_backends())
    if cfg.backend in registry.backends() and not registry.get(cfg.backend).new_policy_each_round:
        raise ValueError(f"iterate --backend {cfg.backend}: each round samples from the policy "
                         "trained the round before, which a running server does not load; use "
                         f"--backend {usable} (prefalign synth and eval take --backend "
                         f"{cfg.backend})")
    if cfg.backend not in round_backends():
        raise ValueError(f"unknown back end {cfg.backend!r}; iterate takes {usable}")


def _generator(cfg: IterateConfig, policy: str | Path):
    """The back end ``cfg`` names, with ``policy`` loaded (a fresh one every round)."""
    return make_generator(str(policy), cfg.backend, batch_size=cfg.batch_size,
                          **cfg.generator_options())


def score_heldout(cfg: IterateConfig, policy: str | Path, path: Path) -> dict[str, Any]:
    """Sample ``eval_n`` responses per held-out prompt from ``policy``, score them, write ``path``."""
    prompts = read_prompts(cfg.eval_prompts, field=cfg.prompt_field)
    gen = _generator(cfg, policy)
    sampling = SamplingConfig(temperature=cfg.eval_temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                              max_new_tokens=cfg.max_new_tokens)
    completions = gen.generate(prompts, cfg.eval_n, sampling, cfg.seed)
    del gen  # frees the policy (vLLM's engine included) before the scorer loads
    scores = score_chunk(_eval_scorer(cfg, policy), prompts, completions)
    values = [s.value for row in scores for s in row if s is not None and s.value is not None]
    total = sum(len(row) for row in completions)
    result = {
        "policy": str(policy), "prompts": len(prompts), "responses": total,
        "scored": len(values), "unscored_or_empty": total - len(values),
        "mean_score": sum(values) / len(values) if values else None,
        "pass_rate": sum(v >= cfg.pass_threshold for v in values) / total if total else None,
        "pass_threshold": cfg.pass_threshold, "sampling": sampling.to_dict(), "n": cfg.eval_n,
        "examples": [{"prompt": p.prompt, "response": c[0].text,
                      "score": s[0].value if s[0] is not None else None}
                     for p, c, s in list(zip(prompts, completions, scores))[:5]],
    }
    atomic_write_json(path, result)
    return result


class RoundMismatchError(ValueError):
    """A finished round in OUTPUT was made with other settings than this run's."""


# How each IterateConfig field bears on a finished round (a test keeps every field classified):
# ROUND_FIELDS are in round_fingerprint (the starting model through each round's policy, by
# content; the prompts by content), NOT_RESULT_FIELDS do not change a round, with the reason.
ROUND_FIELDS = ("model", "prompts", "eval_prompts", "scorer", "eval_scorer", "scorer_obj", "n",
                "pairs", "revise", "critic", "pool", "min_gap", "length_penalty", "filters",
                "temperature",
                "top_p", "top_k", "max_new_tokens", "seed", "batch_size", "prompt_field",
                "backend", "dtype", "objective", "train_args", "eval_n", "eval_temperature",
                "pass_threshold")
NOT_RESULT_FIELDS = {
    "output": "where the loop goes", "rounds": "how many rounds (raising it continues a loop)",
    "chunk_size": "how often synth's log is written", "device": "where the models run",
    "tensor_parallel_size": "how many GPUs one vLLM engine spans",
    "trust_remote_code": "whether a model's own code may run, not what it computes",
    "progress": "progress bars",
}


def round_fingerprint(cfg: IterateConfig, k: int, policy: Path) -> dict[str, Any]:
    """What decides round ``k``'s data, training and eval: the policy it starts from (by
    content, so a retrained earlier round changes every later one) and the settings."""
    scorer = cfg.scorer if cfg.scorer_obj is None else (
        cfg.scorer_obj.describe() if hasattr(cfg.scorer_obj, "describe")
        else type(cfg.scorer_obj).__qualname__)
    shown = lambda v: v if v is None or isinstance(v, (str, os.PathLike)) else "<in memory>"  # noqa: E731
    entries = {"round": k, "policy": str(policy),
               "policy_files": identity.model_identity(str(policy)),
               "eval_prompts": shown(cfg.eval_prompts),
               "eval_prompts_files": identity.data_identity(cfg.eval_prompts), "scorer": scorer}
    specs = [x for x in (cfg.scorer, cfg.eval_scorer) if x]
    if any(names_models(x) and "@ref" in x for x in specs):  # @ref's model, by content
        entries["ref_files"] = identity.model_identity(reference_of(cfg))
    files = {path: sha for x in specs for path, sha in scorer_files(x).items()}
    if files:  # a judge's principles, by content
        entries["scorer_files"] = files
    names = ["top_p", "top_k", "max_new_tokens", "seed", "batch_size", "prompt_field", "eval_n",
             "eval_temperature", "pass_threshold"]
    if k > 0:  # round 0 only evaluates the starting policy
        entries.update(prompts=shown(cfg.prompts), prompts_files=identity.data_identity(cfg.prompts))
        names += ["n", "pairs", "min_gap", "length_penalty", "temperature", "objective",
                  "train_args"]
        if cfg.pool:  # each member's spec; the policy's by the round's policy above
            entries["pool"] = list(cfg.pool)
    # the back end decides the samples; left out at its defaults so older runs still resume
    added = {"backend": "hf", "dtype": "auto", "eval_scorer": ""}
    if k > 0:  # filters and revisions were added later: at none, older rounds still match
        added.update(filters=[], revise="", critic="")
    return identity.fingerprint(entries, cfg, names, added=added)


def _check_round(rdir: Path, info: dict[str, Any], fp: dict[str, Any], out: Path) -> None:
    fix = f"use a new --output folder, or delete {out} to start over"
    recorded = info.get("fingerprint")
    if recorded is None:
        raise RoundMismatchError(f"{rdir / 'round.json'} holds no settings fingerprint (written "
                                 f"by an older prefalign), so it cannot be reused safely; {fix}")
    diffs = identity.differences(recorded, fp, display=("policy", "prompts", "eval_prompts"))
    if diffs:
        raise RoundMismatchError(f"{rdir} was made with other settings ({'; '.join(diffs[:6])}); "
                                 f"{fix}")


# set by each round itself: its policy, its data, its folder, the loop's objective, seed and bars
ROUND_SET = ("model", "data", "output", "objective", "seed", "progress")


def check_train_args(cfg: IterateConfig, origins: dict[str, str] | None = None) -> None:
    """Check ``cfg.train_args`` with TrainConfig's own rules before any work, and store them
    typed as training reads them (``lr: 1e-5`` from YAML text and ``--lr 1e-5`` then give the
    same round fingerprint). ``origins`` names where a key came from (a flag); else it is
    named ``train_args.KEY``. Raises ConfigError."""
    import dataclasses
    import difflib

    from prefalign.core.settings import ConfigError, subject, where
    from prefalign.train.config import TrainConfig

    args, given = dict(cfg.train_args), origins
    origins = {k: (given or {}).get(k, f"train_args.{k}") for k in args}
    taken = sorted(set(args) & set(ROUND_SET))
    if taken:
        raise ConfigError(f"{where(taken[0], origins)}{', '.join(taken)} "
                          f"{'is' if len(taken) == 1 else 'are'} set by each round (its "
                          "policy, data and folder; iterate's --objective, --seed and progress "
                          "bars); leave them out of train_args")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(args) - known)
    if unknown:
        u = unknown[0]
        close = [TrainConfig.KNOWN_AS[u]] if u in TrainConfig.KNOWN_AS else \
            difflib.get_close_matches(u, sorted(known), 2)
        raise ConfigError(f"{subject(u, origins)}: not a training setting"
                          + (f" (did you mean {', '.join(close)}?)" if close else ""))
    probe = TrainConfig(model="-", data="-", objective=cfg.objective)
    for name, value in args.items():
        setattr(probe, name, value)
    nested = {k: v for k, v in (given or {}).items() if "." in k}  # objective_args.beta
    probe.validate({**nested, **{k: origins[k] for k in args}})
    cfg.train_args = {k: getattr(probe, k) for k in args}


def check_iterate_settings(cfg: IterateConfig) -> None:
    """Refuse a loop that would do nothing or cannot sample, before any work: ``rounds`` >= 1,
    counts >= 1, usable sampling settings (synth's and eval's), and held-out prompts, when
    given, that hold at least one prompt."""
    for flag, value in (("--rounds", cfg.rounds), ("--n", cfg.n), ("--eval-n", cfg.eval_n),
                        ("--chunk-size", cfg.chunk_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{flag} {value!r}: must be an integer >= 1")
    check_train_args(cfg)
    if cfg.pool:
        check_pool(cfg)
    if cfg.critic and not cfg.revise:
        raise ValueError("--critic writes the critiques --revise revises by; give --revise too")
    for spec, flag in ((cfg.scorer, "--scorer"), (cfg.eval_scorer, "--eval-scorer")):
        if spec:  # @policy and @ref are known here; the scorer kinds and options too
            from prefalign.scoring import parse_scorer_spec

            parse_scorer_spec(round_scorer_spec(spec, cfg, cfg.model, flag))
    from prefalign.synth.filters import check_filters
    from prefalign.synth.pairs import output_kind
    from prefalign.synth.strategies import check_needs

    check_filters(cfg.filter_specs(), output_kind(cfg.pairs))  # known, valid, given pairs
    check_needs(cfg.pairs, cfg.scorer)
    check_sampling(cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens)
    check_sampling(cfg.eval_temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens,
                   flags={"temperature": "--eval-temperature"})
    if cfg.eval_prompts is not None:
        if not read_prompts(cfg.eval_prompts, field=cfg.prompt_field):
            raise ValueError(f"--eval-prompts {cfg.eval_prompts}: no prompts found")


def run_iterate(cfg: IterateConfig) -> IterateResult:
    from prefalign.train import TrainConfig, train

    check_backend(cfg)
    check_iterate_settings(cfg)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    policy = Path(cfg.model)
    rounds = []
    if cfg.eval_prompts is not None:  # round 0: the starting policy, evaluated
        r0, fp0 = out / "round-0", round_fingerprint(cfg, 0, policy)
        if (r0 / "round.json").exists():
            _check_round(r0, json.loads((r0 / "round.json").read_text()), fp0, out)
        if not (r0 / "round.json").exists() or not (r0 / "eval.json").exists():
            score_heldout(cfg, policy, r0 / "eval.json")
            atomic_write_json(r0 / "round.json", {"round": 0, "policy": str(policy), "fingerprint": fp0})
    for k in range(1, cfg.rounds + 1):
        rdir = out / f"round-{k}"
        done_file = rdir / "round.json"
        fp = round_fingerprint(cfg, k, policy)
        if done_file.exists():
            info = json.loads(done_file.read_text())
            _check_round(rdir, info, fp, out)
            policy = Path(info["policy"])
            rounds.append({key: v for key, v in info.items() if key != "fingerprint"})
            continue
        rdir.mkdir(parents=True, exist_ok=True)
        # an unfinished round resumes only from the same start (its synth log knows the policy
        # by path: a retrained earlier round at the same path would mix samples)
        started = rdir / "round.start.json"
        if started.exists():
            _check_round(rdir, json.loads(started.read_text()), fp, out)
        else:
            atomic_write_json(started, {"round": k, "fingerprint": fp})
        shared = values_of(cfg, SynthSettings, SamplingSettings, BackendSettings)
        synth = run_synth(SynthConfig(**{  # the loop's synth settings, round k's policy and seed
            **shared, "model": "" if cfg.pool else str(policy), "pool": round_pool(cfg, policy),
            "output": str(rdir / "data.jsonl"),
            "scorer": round_scorer_spec(cfg.scorer, cfg, policy), "scorer_obj": cfg.scorer_obj,
            "revise": round_scorer_spec(cfg.revise, cfg, policy, "--revise"),
            "critic": round_scorer_spec(cfg.critic, cfg, policy, "--critic"),
            "seed": cfg.seed + k, "progress": cfg.progress}))
        trained = bool(synth.records)
        steps = 0
        if trained:
            targs = dict(cfg.train_args)
            targs.setdefault("cache_dir", str(out / ".cache"))
            result = train(TrainConfig(model=str(policy), data=str(synth.output),
                                       output=str(rdir), objective=cfg.objective,
                                       progress=cfg.progress, seed=cfg.seed + k, **targs))
            policy, steps = result.output_dir / "model", result.steps
        info = {"round": k, "policy": str(policy), "trained": trained, "train_steps": steps,
                "records": len(synth.records), "synth_counts": synth.counts}
        if not trained:
            info["note"] = "no preference records this round; the policy is unchanged"
        if cfg.eval_prompts is not None:
            info["eval"] = {k2: v for k2, v in score_heldout(
                cfg, policy, rdir / "eval.json").items() if k2 != "examples"}
        atomic_write_json(done_file, {**info, "fingerprint": fp})
        rounds.append(info)
    return IterateResult(out, policy, rounds)
