"""`evaluate_policy`: the diagnostics of `prefalign.eval.metrics` for a saved policy.

On preference data it computes the log-prob metrics (ranking accuracy, top-k statistics and,
with a reference, implicit rewards, likelihood displacement, idealized ranking accuracy and the
alignment gap). On prompts it samples responses (seeded) for length statistics and, with a
reference, KL from samples and optionally a win rate from a ``compare`` judge.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from prefalign.core.files import atomic_write_json
from prefalign.data import TokenizedExample, load_records, tokenize_records
from prefalign.data.prompts import read_prompt_rows
from prefalign.engine.forward import PackedLogProbModel
from prefalign.eval import metrics as M
from prefalign.eval.drift import drift, read_patterns
from prefalign.eval.judged import judged_metrics
from prefalign.eval.leakage import preference_leakage
from prefalign.eval.logps import compute_logps
from prefalign.eval.sampling import sample_responses
from prefalign.eval.winrate import compare_all, win_rate

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def read_prompts(source: str | os.PathLike | Sequence, *, field: str = "prompt",
                 split: str | None = None, limit: int | None = None) -> list:
    """Prompts from a list, a ``.txt`` file (one per line) or rows with a ``field`` column (a
    string or chat messages) or of plain strings: any source `prefalign.data.prompts.
    read_prompt_rows` reads (JSONL, JSON, CSV, Parquet, a saved `datasets` folder with
    ``split``), checked as training data's prompts are (errors name the file, the line or row,
    and the field), at most ``limit``. A row's ``system`` goes into its prompt (a system
    message; before a plain-string prompt, as training renders it)."""
    return [_with_system(r.prompt, r.system)
            for r in read_prompt_rows(source, field=field, split=split, limit=limit,
                                      strings=True)]


def _with_system(prompt, system):
    if system is None:
        return prompt
    if isinstance(prompt, str):
        return f"{system}\n\n{prompt}"  # what render_prompt feeds the model for this row
    return [{"role": "system", "content": system}, *prompt]


def _load(path, dtype: str, device, trust_remote_code: bool):
    from prefalign.engine.loading import check_model, load_causal_lm

    impl = check_model(path, trust_remote_code=trust_remote_code)
    model = load_causal_lm(path, dtype=DTYPES[dtype], attn_implementation=impl,
                           trust_remote_code=trust_remote_code)
    return model.to(device).eval().requires_grad_(False)


def _pair_metrics(policy, ref, examples, *, beta, pad_token_id, max_tokens, topk) -> tuple[dict, list[dict]]:
    pol = compute_logps(policy, examples, pad_token_id=pad_token_id, max_tokens=max_tokens,
                        topk=topk)
    pc, pr = pol.logps[:, 0], pol.logps[:, 1]
    out = M.ranking_accuracy(pc, pr, chosen_lengths=pol.lengths[:, 0],
                             rejected_lengths=pol.lengths[:, 1])
    out.update({"logps/chosen": float(pc.mean()), "logps/rejected": float(pr.mean())})
    out.update(M.token_stat_summary(pol.stats, pol.sequence_index, num_responses=2))
    if ref is None:
        return out, []
    rl = compute_logps(ref, examples, pad_token_id=pad_token_id, max_tokens=max_tokens,
                       stats=()).logps
    rc, rr = rl[:, 0], rl[:, 1]
    out.update(M.implicit_reward_metrics(pc, pr, rc, rr, beta=beta))
    out.update(M.likelihood_displacement(pc, pr, rc, rr))
    alpha = torch.tensor([M.preference_probability(torch.tensor([ex.scores[0]]),
                                                   torch.tensor([ex.scores[1]])).item()
                          if ex.scores else 1.0 for ex in examples], dtype=torch.float64)
    out.update(M.idealized_ranking_accuracy(rc, rr, beta=beta, preference_prob=alpha))
    out["alignment_gap"] = M.alignment_gap(out["idealized_ranking_accuracy"],
                                           out["ranking_accuracy"])
    difficulty, hardest = M.pair_difficulty(pc, pr, rc, rr, [ex.index for ex in examples])
    out.update(difficulty)
    return out, hardest


def _judges(judge) -> list:
    if judge is None:
        return []
    judges = list(judge) if isinstance(judge, (list, tuple)) else [judge]
    if len(judges) > 2:
        raise ValueError(f"--judge: give one judge, or two for their agreement; got "
                         f"{len(judges)}")
    return judges


def _baseline_texts(baseline, prompts, ref_lm, tokenizer, sampling: dict, dtype, device,
                    trust_remote_code) -> list[str]:
    """The responses the policy is judged against, one per prompt."""
    if isinstance(baseline, (list, tuple)):
        texts = [str(t) for t in baseline]
    elif baseline is not None and Path(baseline).is_file():
        from prefalign.data.readers import open_source

        texts = []
        for where, row in open_source(str(baseline), None)[2]:
            if not isinstance(row, dict) or not isinstance(row.get("response"), str):
                raise ValueError(f"{where}: field 'response': the baseline's response (a "
                                 "string) is missing")
            texts.append(row["response"])
    else:
        if baseline is not None:  # another model: its own tokenizer and chat template
            from transformers import AutoTokenizer

            model = _load(baseline, dtype, device, trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(baseline,
                                                      trust_remote_code=trust_remote_code)
        elif ref_lm is not None:
            model = ref_lm
        else:
            raise ValueError("a judged win rate needs a baseline: --baseline MODEL|FILE, or "
                             "--ref-model (its samples)")
        samples = sample_responses(model, tokenizer, prompts, num_samples=1, **sampling)
        texts = [t[0] for t in samples.texts]
    if len(texts) != len(prompts):
        raise ValueError(f"--baseline {baseline}: {len(texts)} responses for {len(prompts)} "
                         "prompts; give one per prompt, in their order")
    return texts


def evaluate_policy(policy_path: str | os.PathLike, data: Any = None, *,
                    ref_path: str | os.PathLike | None = None, prompts: Any = None,
                    beta: float = 0.1, output: str | os.PathLike | None = None,
                    max_length: int | None = None, truncation: str = "keep_start",
                    num_samples: int = 1, max_new_tokens: int = 64, temperature: float = 1.0,
                    top_p: float = 1.0, top_k: int = 0, seed: int = 0, max_tokens: int = 8192,
                    topk: int = 10,
                    sample_batch_size: int = 16,
                    compare: Callable[[Any, str, str], int] | None = None,
                    judge: Any = None, dtype: str = "float32", device: str | None = None,
                    trust_remote_code: bool = False, backend: str = "hf",
                    base_url: str | None = None, served_model: str | None = None,
                    concurrency: int = 8, timeout: float = 120.0, max_retries: int = 5,
                    tensor_parallel_size: int = 1, generator: Any = None,
                    baseline: Any = None, bootstrap: int = 1000,
                    patterns: str | None = None, lc_feature: Sequence[str] = ()) -> dict:
    """Evaluate a saved policy; returns the results dict and writes ``output/eval.json``.

    ``data``: pairwise preference data (anything `load_records` reads). ``ref_path``: the
    reference model (the metrics that need one are skipped without it). ``prompts``: a list or
    a file (`read_prompts`) to sample ``num_samples`` responses per prompt from, seeded by
    ``seed``. ``compare(prompt, policy_response, reference_response) -> +1/0/-1``: a judge for
    the win rate against the reference's samples (needs ``ref_path`` and ``prompts``).
    ``judge``: a judge (a generator spec such as a model folder or ``openai:URL#MODEL``, or a
    generator object), or a list of two: each is checked for preference leakage and, with
    ``prompts``, judges the policy's first sample per prompt against the ``baseline``'s in both
    orders (`prefalign.eval.judged`: win rate with a ``bootstrap`` interval, length-controlled
    win rate, tie and position-bias rates, κ between two judges). ``baseline``: a model folder
    (sampled as the policy is), a .jsonl/.json file with a ``response`` per prompt (in the
    prompts' order), or a list of responses; default: the reference model's samples.
    ``lc_feature``: what the length-controlled win rate controls for besides the length gap
    (`prefalign.eval.style_features`: words, lines, markdown or MODULE:FUNCTION).
    ``patterns``: a file of regular expressions, one per line: the share of the policy's and
    the baseline's samples matching any (`prefalign.eval.drift`).

    Sampling goes through `prefalign.generation`: ``backend`` "hf" (default: the policy loaded
    here), "vllm" (the policy folder loaded by vLLM) or "openai" (an OpenAI-compatible server at
    ``base_url`` serving the policy as ``served_model``, default ``policy_path``; with
    ``concurrency``, ``timeout`` and ``max_retries``); or a ``generator`` object. The policy's
    tokenizer is always read from ``policy_path``; the policy itself is loaded here only for
    log-prob metrics (``data``, or KL with ``ref_path``) or for the hf back end.
    """
    from prefalign.generation import make_generator, parse_spec
    from prefalign.generation import registry as generation_registry

    from transformers import AutoTokenizer

    if data is None and prompts is None:
        raise ValueError("evaluate_policy needs preference data (data=...), prompts "
                         "(prompts=...), or both")
    if prompts is not None:  # sampling settings, checked before anything is loaded
        from prefalign.generation.types import check_sampling

        check_sampling(temperature, top_p, top_k, max_new_tokens)
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(f"--num-samples {num_samples!r}: must be an integer >= 1")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    sampler = generation_registry.get(backend)
    if sampler.served and generator is None and not base_url:
        raise ValueError(f"the {backend} back end needs --base-url (e.g. "
                         "http://localhost:8000/v1)")
    lc_features = [lc_feature] if isinstance(lc_feature, str) else list(lc_feature)
    if lc_features:  # resolved (a user's function imported) before any model is loaded
        from prefalign.eval.style_features import resolve

        if not judge or prompts is None:
            raise ValueError("--lc-feature controls the judged win rate: give --judge and "
                             "--prompts")
        for name in lc_features:
            resolve(name)
    drift_patterns = None
    if patterns is not None:  # read (and checked) before any model is loaded
        if prompts is None:
            raise ValueError("--patterns counts a behaviour in sampled responses: give --prompts")
        drift_patterns = read_patterns(str(patterns))
    prompt_list = None
    if prompts is not None:  # read (and checked) before any model is loaded
        prompt_list = read_prompts(prompts)
        if not prompt_list:
            raise ValueError(f"{prompts}: no prompts found")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = AutoTokenizer.from_pretrained(policy_path, trust_remote_code=trust_remote_code)
    if ref_path is not None:  # the reference scores the policy's token ids
        from prefalign.engine.loading import check_same_tokenizer

        check_same_tokenizer(policy_path, ref_path, policy_tokenizer=tokenizer,
                             trust_remote_code=trust_remote_code)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    policy_lm = policy = None
    # the policy is loaded here for log-probs, and for sampling by a back end that shares it
    if data is not None or ref_path is not None or (sampler.shares_loaded_model
                                                    and generator is None):
        policy_lm = _load(policy_path, dtype, device, trust_remote_code)
        policy = PackedLogProbModel(policy_lm)
    ref_lm = ref = None
    if ref_path is not None:
        ref_lm = _load(ref_path, dtype, device, trust_remote_code)
        ref = PackedLogProbModel(ref_lm)
    result: dict[str, Any] = {"policy": str(policy_path),
                              "reference": None if ref_path is None else str(ref_path),
                              "beta": beta, "seed": seed, "metrics": {}, "lengths": {},
                              "counts": {}, "warnings": []}
    judges = _judges(judge)
    for j in judges:
        if isinstance(j, (str, os.PathLike, dict)):  # a spec names its model
            model = parse_spec(str(j))[1] if isinstance(j, (str, os.PathLike)) else j
            result["warnings"] += [f"preference leakage: {r}"
                                   for r in preference_leakage(model, policy_path)]

    if data is not None:
        records, load_report = load_records(data)
        examples, tok_report = tokenize_records(records, tokenizer, max_length=max_length,
                                                truncation=truncation, validated=True)
        pairs = [ex for ex in examples if ex.kind == "pairwise"]
        result["counts"].update({"records": load_report.rows, "pairs": len(pairs),
                                 "not_pairwise": len(examples) - len(pairs),
                                 "dropped_by_tokenization": tok_report.n_dropped,
                                 "truncated": tok_report.truncated})
        if not pairs:
            raise ValueError(f"{data}: no pairwise records to evaluate (found "
                             f"{len(examples)} of another kind); log-prob metrics need "
                             "prompt/chosen/rejected rows")
        pair_metrics, hardest = _pair_metrics(policy, ref, pairs, beta=beta, pad_token_id=pad,
                                              max_tokens=max_tokens, topk=topk)
        result["metrics"].update(pair_metrics)
        if hardest:  # the pairs the reference ranks worst, and where the policy stands
            result["hardest_pairs"] = hardest

    if prompt_list is not None:
        if generator is None and not sampler.shares_loaded_model:
            generator = make_generator(
                (served_model or str(policy_path)) if sampler.served else str(policy_path),
                backend, base_url=base_url, dtype=dtype, trust_remote_code=trust_remote_code,
                concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                tensor_parallel_size=tensor_parallel_size)
        result["backend"] = backend if generator is None else getattr(generator, "name", backend)
        samples = sample_responses(policy_lm, tokenizer, prompt_list, num_samples=num_samples,
                                   max_new_tokens=max_new_tokens, temperature=temperature,
                                   top_p=top_p, top_k=top_k, seed=seed,
                                   batch_size=sample_batch_size, generator=generator)
        lengths = [len(r) for rs in samples.responses for r in rs]
        result["lengths"]["policy"] = lengths
        result["metrics"].update(M.length_stats(lengths, prefix="length/policy"))
        result["samples"] = [{"prompt": p, "responses": t}
                             for p, t in zip(prompt_list, samples.texts)]
        result["counts"]["prompts"] = len(prompt_list)
        if ref is not None:
            kl_samples = samples
            if temperature != 1.0 or top_p < 1.0 or top_k:
                # KL(π ‖ π_ref) needs samples from π itself: tempered or truncated samples
                # estimate another quantity (5.25 for an exact 2.60 at temperature 0.5)
                kl_samples = sample_responses(policy_lm, tokenizer, prompt_list,
                                              num_samples=num_samples,
                                              max_new_tokens=max_new_tokens, temperature=1.0,
                                              top_p=1.0, seed=seed, batch_size=sample_batch_size,
                                              generator=generator)
                result["kl_sampling"] = ("a separate draw at temperature 1, no top-p or top-k "
                                         f"(the eval samples use temperature {temperature}, "
                                         f"top-p {top_p}, top-k {top_k})")
            flat = [TokenizedExample(p, [r], "sft") for p, rs in
                    zip(kl_samples.prompt_ids, kl_samples.responses) for r in rs]
            pl = compute_logps(policy, flat, pad_token_id=pad, max_tokens=max_tokens, stats=())
            rl = compute_logps(ref, flat, pad_token_id=pad, max_tokens=max_tokens, stats=())
            result["metrics"].update(M.kl_from_samples(pl.logps[:, 0], rl.logps[:, 0]))
            if compare is not None:
                ref_samples = sample_responses(ref_lm, tokenizer, prompt_list, num_samples=1,
                                               max_new_tokens=max_new_tokens,
                                               temperature=temperature, top_p=top_p,
                                               top_k=top_k, seed=seed,
                                               batch_size=sample_batch_size)
                result["lengths"]["reference"] = [len(rs[0]) for rs in ref_samples.responses]
                outcomes = compare_all(compare, prompt_list, [t[0] for t in samples.texts],
                                       [t[0] for t in ref_samples.texts])
                result["metrics"].update({f"winrate/{k}": v
                                          for k, v in win_rate(outcomes).items()})
        elif compare is not None:
            raise ValueError("a win rate needs a reference model to compare against; give "
                             "ref_path")
        # a judge given as a config (dict) is checked for leakage only
        judges = [j for j in judges if isinstance(j, (str, os.PathLike)) or hasattr(j, "generate")]
        theirs = None
        if judges or (drift_patterns and (baseline is not None or ref_lm is not None)):
            theirs = _baseline_texts(baseline, prompt_list, ref_lm, tokenizer, dict(
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                top_k=top_k, seed=seed, batch_size=sample_batch_size), dtype, device,
                trust_remote_code)
        if drift_patterns:
            shares, per_pattern = drift(drift_patterns, [t for ts in samples.texts for t in ts],
                                        theirs)
            result["metrics"].update(shares)
            result["drift"] = per_pattern
        if judges:
            judged, verdicts = judged_metrics(
                judges, prompt_list, [t[0] for t in samples.texts], theirs,
                lengths=lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                resamples=bootstrap, seed=seed, lc_features=lc_features)
            result["metrics"].update(judged)
            result["judged"] = verdicts
    for w in result["warnings"]:
        log.warning(w)
    if output is not None:
        atomic_write_json(Path(output) / "eval.json", result)
    return result
