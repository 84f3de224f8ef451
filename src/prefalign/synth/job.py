"""`run_synth`: prompts -> N samples each -> scores -> preference records, resumable.

Work goes in chunks of ``chunk_size`` prompts, fixed by prompt index (chunk c holds prompts
``c*chunk_size ..``). Each finished chunk's per-prompt results (completions with their seeds,
scores, failure reasons) are appended to ``OUTPUT.progress.jsonl`` with write + flush + fsync
(see `DurableLog`). A rerun with the same settings reads that log, discards a torn last line,
skips finished prompts and regenerates each unfinished chunk whole (so its batches are the same
as in an uninterrupted run) but logs only the prompts missing from the log: nothing is lost or
duplicated, and because every sample has its own seed the result is the same as an uninterrupted
run. The records are built from the log at the end and written atomically to ``OUTPUT``
(``.jsonl`` or ``.parquet``), with ``OUTPUT``'s ``.manifest.json`` beside it. Since pairs are
built from the log, rerunning with another ``pairs`` strategy only rebuilds the output.

Back ends that see token ids (hf, vllm) also log each prompt's ids, each response's sampled ids
and the tokenizer's fingerprint; the records carry them (``sampled_token_ids``, see
`prefalign.data.sampled`) so that training trains on the tokens the policy sampled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefalign.data.sampled import FIELD as SAMPLED_FIELD
from prefalign.data.sampled import SampledIds, tokenizer_fingerprint
from prefalign.data.tokenization import tokenize_prompt
from prefalign.data.readers import JSONL_SUFFIXES, PARQUET_SUFFIXES
from prefalign.core.files import atomic_write_json
from prefalign.scoring.model_refs import resolve_model_refs
from prefalign.core import identity
from prefalign.data.writers import save_records
from prefalign.generation import make_generator
from prefalign.generation import registry as generation_registry
from prefalign.generation.types import Completion, PromptItem
from prefalign.core.locks import LockHeldError, exclusive_lock
from prefalign.scoring.base import NON_FINITE, is_finite_score

from prefalign.core.durable_log import DurableLog
from .config import SynthConfig
from .filters import FilterSpec, apply_filters, check_filters
from .pairs import PairOptions, build_records, output_kind
from .shards import (NotFinished, ShardMismatch, header_differences, merged_entries,
                     parse_shard)
from .strategies import check_needs
from .revise import revise_chunk, revision_pair
from .prompts import read_prompts

MAX_REASONS = 20  # distinct failure reasons kept in the counts (the rest summed)


logger = logging.getLogger(__name__)


@dataclass
class SynthResult:
    output: Path
    manifest: Path
    records: list
    counts: dict[str, Any]


def check_output(path: Path) -> None:
    """Refuse an output synth cannot write, before any work."""
    if path.is_dir():
        raise ValueError(f"--output {path} is a folder; synth writes one file (.jsonl or "
                         f".parquet), e.g. --output {path / 'pairs.jsonl'}")
    if path.suffix.lower() not in JSONL_SUFFIXES + PARQUET_SUFFIXES:
        kind = f"file type {path.suffix!r}" if path.suffix else "a name without a file type"
        raise ValueError(f"--output {path}: {kind}; synth writes .jsonl or .parquet")


def check_not_prompts(prompts: Any, paths) -> None:
    """Refuse an output (or its log or manifest) that is the prompts file itself: writing it
    would overwrite the prompts. Paths are compared resolved (links, ``..``, case of the same
    file), before any work."""
    if not isinstance(prompts, (str, os.PathLike)) or not str(prompts):
        return
    src = Path(prompts)
    for path in paths:
        same = src.resolve() == path.resolve()
        if not same and src.exists() and path.exists():
            try:
                same = os.path.samefile(src, path)
            except OSError:
                same = False
        if same:
            raise ValueError(f"--output {path} is the prompts file ({prompts}); writing it "
                             "would overwrite the prompts: choose another --output")


def _spec_generator(cfg: SynthConfig, obj, spec: str, flag: str, default=None):
    """The generator a flag names: its object if set, else its spec (``@policy`` being
    --model), else ``default``."""
    if obj is not None:
        return obj
    if not spec:
        return default
    spec = resolve_model_refs(spec, policy=cfg.model or None, ref=None, where=flag)
    return make_generator(spec, batch_size=cfg.batch_size, **cfg.generator_options())


def make_reviser(cfg: SynthConfig):
    """The --revise generator; None without."""
    return _spec_generator(cfg, cfg.reviser_obj, cfg.revise, "--revise")


def make_critic(cfg: SynthConfig, reviser):
    """The --critic generator; without one the reviser critiques."""
    return _spec_generator(cfg, cfg.critic_obj, cfg.critic, "--critic", default=reviser)


def make_backend(cfg: SynthConfig):
    """The generator ``cfg`` names (its ``generator`` object if set), from the one factory."""
    if cfg.generator is not None:
        return cfg.generator
    if cfg.pool:
        from prefalign.generation.pool import make_pool

        options = cfg.served_options()
        options.pop("base_url")  # each member's spec names its own server
        return make_pool(cfg.pool, batch_size=cfg.batch_size, **cfg.generator_options(),
                         **options)
    return make_generator(cfg.model, cfg.backend, batch_size=cfg.batch_size,
                          **cfg.generator_options(), **cfg.served_options())


def _source_id(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return {"path": str(source), "sha256": identity.file_sha256(source)}
    if isinstance(source, (str, os.PathLike)):
        return {"path": str(source)}
    if isinstance(source, list):
        return {"rows_sha256": identity.json_sha256(source)}
    return {"object": type(source).__name__}


# How each SynthConfig field bears on a resumed log (a test keeps every field classified):
# LOG_FIELDS decide the samples and scores (in the log's fingerprint; a log written with others
# is refused), OUTPUT_FIELDS only how the output is built from the log (changing them rebuilds
# it), NOT_RESULT_FIELDS neither, with the reason.
LOG_FIELDS = ("model", "pool", "revise", "reviser_obj", "critic", "critic_obj", "prompts",
              "split", "limit", "prompt_field", "n", "temperature", "top_p", "top_k",
              "max_new_tokens", "seed", "backend", "base_url", "dtype", "scorer", "generator",
              "scorer_obj")
OUTPUT_FIELDS = ("pairs", "min_gap", "length_penalty", "label_threshold",
                 "keep_whitespace_variants", "filters")
NOT_RESULT_FIELDS = {
    "output": "where the result goes",
    "shard": "which chunks this worker samples (its log's header holds it; the merge checks "
             "every worker's)",
    "merge": "joins the workers' logs into the output, as one worker builds it from its log",
    "device": "where the model runs (the same model and seeds)",
    "tensor_parallel_size": "how many GPUs one vLLM engine spans (the same model and seeds)",
    "batch_size": "how prompts are batched (per-sample seeds)",
    "chunk_size": "how often the log is written",
    "concurrency": "requests in flight", "timeout": "seconds per request",
    "max_retries": "retries of a failed request",
    "trust_remote_code": "whether a model's own code may run, not what it computes",
    "progress": "a progress bar",
}


def scorer_files(spec: str) -> dict[str, str]:
    """Each file the scorer spec names (a judge's principles) -> its content hash."""
    from prefalign.scoring import files_named

    return {path: (identity.file_sha256(path) if Path(path).is_file() else f"missing:{path}")
            for path in files_named(spec)} if spec else {}


def fingerprint(cfg: SynthConfig, prompts: list[PromptItem]) -> dict[str, Any]:
    """The settings that decide the samples and scores (LOG_FIELDS); a log written with others
    is refused. ``split`` and ``dtype`` enter only when set (older logs still resume); prompts
    from a folder are identified by the prompts read (a path says nothing of its contents)."""
    model = cfg.model if cfg.generator is None else cfg.generator.describe()
    scorer = cfg.scorer if cfg.scorer_obj is None else cfg.scorer_obj.describe()
    source = _source_id(cfg.prompts)
    if set(source) == {"path"}:  # a folder (a saved dataset)
        source["rows_sha256"] = identity.json_sha256([dataclasses.asdict(p) for p in prompts])
    entries = {"model": model, "prompts": source, "n_prompts": len(prompts),
               "sampling": cfg.sampling().to_dict(), "scorer": scorer}
    files = scorer_files(cfg.scorer) if cfg.scorer_obj is None else {}
    if files:  # a judge's principles decide its scores: by content, not path
        entries["scorer_files"] = files
    if cfg.reviser_obj is not None:
        entries["reviser"] = cfg.reviser_obj.describe()
    if cfg.critic_obj is not None:
        entries["critic"] = cfg.critic_obj.describe()
    # bf16 and fp32 weights sample differently; both enter only when set
    return identity.fingerprint(entries, cfg, ("backend", "base_url", "n", "seed", "prompt_field"),
                                added={"split": None, "dtype": "auto", "pool": [], "revise": "",
                                       "critic": ""})


class _PromptIds:
    """The generator's tokenizer fingerprint and the prompt ids it fed the model (the same
    `tokenize_prompt` the hf and vllm back ends call); nothing for back ends without one."""

    def __init__(self, generator):
        self.tokenizer = getattr(generator, "tokenizer", None)
        self.fingerprint = (tokenizer_fingerprint(self.tokenizer)
                            if self.tokenizer is not None else None)

    def fields(self, item: PromptItem, completions: list[Completion]) -> dict[str, Any]:
        if self.tokenizer is None or all(c.token_ids is None for c in completions):
            return {}
        return {"tokenizer": self.fingerprint,
                "prompt_ids": tokenize_prompt(item.prompt, self.tokenizer, item.system)}


def _entry(item: PromptItem, completions: list[Completion], scores,
           prompt_ids: _PromptIds | None = None, revision=None) -> dict[str, Any]:
    entry = {"index": item.index, "completions": [c.to_dict() for c in completions],
             "scores": [s.value if s is not None else None for s in scores],
             "reasons": [s.reason if s is not None else "empty_response" for s in scores]}
    if any(s is not None and s.votes is not None for s in scores):
        entry["votes"] = [list(s.votes) if s is not None and s.votes is not None else None
                          for s in scores]
    if any(s is not None and s.beats is not None for s in scores):
        entry["beats"] = [list(s.beats) if s is not None and s.beats is not None else None
                          for s in scores]
    notes = next((s.notes for s in scores if s is not None and s.notes), None)
    if notes:  # one per prompt (a self-test scorer's tests)
        entry["notes"] = notes
    if prompt_ids is not None:
        entry.update(prompt_ids.fields(item, completions))
    if revision is not None:
        entry["revision"] = revision
    return entry


def score_chunk(scorer, items: list[PromptItem], completions: list[list[Completion]]):
    """Scores per prompt and sample; empty completions are not shown to the scorer (None)."""
    groups, keep = [], []
    for item, comps in zip(items, completions):
        idx = [j for j, c in enumerate(comps) if c.text.strip()]
        keep.append(idx)
        groups.append((item, [comps[j].text for j in idx]))
    scored = scorer.score(groups) if any(g[1] for g in groups) else [[] for _ in groups]
    out = []
    for comps, idx, row in zip(completions, keep, scored):
        full = [None] * len(comps)
        for j, s in zip(idx, row):
            if s is not None and s.value is not None and not is_finite_score(s.value):
                s = dataclasses.replace(s)  # built again: a non-finite value becomes None
            if s is not None and s.beats is not None:  # group positions -> sample indices
                beats = [None] * len(comps)
                for position, p in zip(idx, s.beats):
                    beats[position] = p
                s = dataclasses.replace(s, beats=tuple(beats))
            full[j] = s
        out.append(full)
    return out


def _chunks(items: list[PromptItem], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def check_settings(cfg: SynthConfig) -> None:
    """Refuse counts and sampling settings that cannot work, naming the flag and its range,
    before any prompt is read or model loaded."""
    for flag, value in (("--n", cfg.n), ("--chunk-size", cfg.chunk_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{flag} {value!r}: must be an integer >= 1")
    if cfg.limit is not None and (not isinstance(cfg.limit, int) or isinstance(cfg.limit, bool)
                                  or cfg.limit < 1):
        raise ValueError(f"--limit {cfg.limit!r}: must be an integer >= 1 (leave it out for "
                         "all prompts)")
    if cfg.pool:  # the members' counts make n
        from prefalign.generation.pool import pool_size

        if cfg.model:
            raise ValueError("give --model or --pool, not both")
        cfg.n = pool_size(cfg.pool, cfg.n, "n" in cfg.origins)
    cfg.sampling()  # SamplingConfig checks temperature, top_p, top_k, max_new_tokens
    # every --filter: a known name with known, valid options, and pairs for those judging them
    check_filters(cfg.filter_specs(), output_kind(cfg.pairs))
    if cfg.scorer_obj is None:
        check_needs(cfg.pairs, cfg.scorer)  # e.g. dstc's matrix needs selftests:
    if cfg.scorer_obj is None and cfg.scorer:  # @policy is --model; synth has no @ref
        resolve_model_refs(cfg.scorer, policy=cfg.model or None, ref=None)
        from prefalign.scoring import files_named

        for path in files_named(cfg.scorer):  # a judge's principles, before any model loads
            if not Path(path).is_file():
                raise ValueError(f"--scorer {cfg.scorer!r}: {path}: no such file")
    if cfg.revise and cfg.reviser_obj is None:
        resolve_model_refs(cfg.revise, policy=cfg.model or None, ref=None, where="--revise")
    if (cfg.critic or cfg.critic_obj is not None) and not (cfg.revise or cfg.reviser_obj):
        raise ValueError("--critic writes the critiques --revise revises by; give --revise too")
    if cfg.critic and cfg.critic_obj is None:
        resolve_model_refs(cfg.critic, policy=cfg.model or None, ref=None, where="--critic")


def check_prompt_lengths(generator, prompts, max_new_tokens: int, source) -> None:
    """Refuse, before sampling, a prompt that with ``max_new_tokens`` would pass the model's
    positions (the hf back end would generate past them: garbage or an index error mid-run).
    Back ends that do not expose their model (vllm, openai) check this themselves."""
    for member in getattr(generator, "generators", ()):  # a pool: each of its models
        check_prompt_lengths(member, prompts, max_new_tokens, source)
    model, tokenizer = getattr(generator, "model", None), getattr(generator, "tokenizer", None)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int) or tokenizer is None:
        return
    for item in prompts:
        n = len(tokenize_prompt(item.prompt, tokenizer, item.system))
        if n + max_new_tokens > limit:
            raise ValueError(f"{source}: prompt {item.index + 1} is {n} tokens; with "
                             f"--max-new-tokens {max_new_tokens} it passes the model's {limit} "
                             "positions; shorten it or lower --max-new-tokens")


def run_synth(cfg: SynthConfig) -> SynthResult:
    """Run (or resume) a synth job; see the module docstring. The output is locked for the
    run (``OUTPUT.lock``): a second job on it is refused, naming the first one's PID. With
    ``shard`` this is one worker of several, with ``merge`` the step that joins them
    (`prefalign.synth.shards`)."""
    check_settings(cfg)
    shard = parse_shard(cfg.shard)
    out_path, log_path, manifest_path = cfg.paths()
    check_output(out_path)
    check_not_prompts(cfg.prompts, (out_path, log_path, manifest_path))
    opts = cfg.pair_options()
    if cfg.merge:
        if shard is not None:
            raise ValueError("give --shard (a worker) or --merge (joining them), not both")
        with exclusive_lock(out_path.with_name(out_path.name + ".lock"),
                            what=f"synth output {out_path}"):
            return merge_shards(cfg, opts, out_path, manifest_path)
    if cfg.generator is None and not cfg.model and not cfg.pool:
        raise ValueError("synth needs a model (--model) or a pool of them (--pool)")
    if cfg.scorer_obj is None and not cfg.scorer:
        raise ValueError("synth needs a scorer (--scorer), e.g. verifier:mypkg.checks:exact_sum")
    if cfg.generator is None:
        generation_registry.get(cfg.backend)  # an unknown one named, with the closest
    # one writer per output (or per worker's share): a second job would redo the first's work
    lock, what = ((out_path.with_name(out_path.name + ".lock"), f"synth output {out_path}")
                  if shard is None else
                  (shard.lock_path(out_path), f"synth worker {shard.index}/{shard.count} of "
                                              f"{out_path}"))
    with exclusive_lock(lock, what=what):
        prompts = read_prompts(cfg.prompts, field=cfg.prompt_field, split=cfg.split,
                               limit=cfg.limit)
        if not prompts:
            raise ValueError(f"{cfg.prompts}: no prompts")
        fp = fingerprint(cfg, prompts)
        if shard is None:
            log = _open_log(log_path, {"header": fp})
            run = _sample(cfg, list(_chunks(prompts, cfg.chunk_size)), log)
            return write_output(cfg, opts, prompts, log.entries[1:], fp, run,
                                out_path, manifest_path, logs=[log_path],
                                discarded=log.discarded)
        log = _open_log(shard.log_path(out_path), shard.header(fp, cfg.chunk_size))
        share = [c for k, c in enumerate(_chunks(prompts, cfg.chunk_size)) if shard.owns(k)]
        run = _sample(cfg, share, log)
    try:  # the last worker to finish joins them
        return _merge_when_free(cfg, opts, out_path, manifest_path, prompts, fp)
    except (NotFinished, ShardMismatch) as why:
        if isinstance(why, ShardMismatch):  # its own share is done and logged all the same
            logger.warning("worker %d/%d: not merging: %s", shard.index, shard.count, why)
        counts = {"shard": f"{shard.index}/{shard.count}", "prompts": sum(map(len, share)),
                  **run.counts(log.discarded), "merged": False}
        return SynthResult(out_path, manifest_path, [], counts)


def _merge_when_free(cfg, opts, out_path, manifest_path, prompts, fp, wait: float = 120.0):
    """The merge, under the output's lock; while another worker holds it (it found this
    worker unfinished a moment ago, or is merging), wait for it and check again."""
    deadline = time.time() + wait
    while True:
        try:
            with exclusive_lock(out_path.with_name(out_path.name + ".lock"),
                                what=f"synth output {out_path}"):
                return merge_shards(cfg, opts, out_path, manifest_path, prompts=prompts, fp=fp)
        except LockHeldError:
            if time.time() > deadline:
                raise NotFinished(f"{out_path}: another process held it for {wait:g} s; run "
                                  "--merge when the workers are done") from None
            time.sleep(0.5)


def _open_log(path: Path, header: dict[str, Any]) -> DurableLog:
    """The durable log at ``path``, started with ``header`` or written with it (else refused,
    naming what differs)."""
    log = DurableLog(path)
    if log.entries:
        found = log.entries[0]
        if found != header:
            what = header_differences(found, header)
            raise ValueError(f"{path} was written by a synth run with other settings "
                             f"({what}); use another --output, or delete the log to start over")
    else:
        log.append([header])
    return log


@dataclass
class _Run:
    """What this run sampled, for the manifest."""

    resumed: int = 0
    generated: int = 0
    seconds: float = 0.0
    backend: dict | None = None
    retries: int | None = None
    scorer_stats: Counter = dataclasses.field(default_factory=Counter)
    scorer_details: dict | None = None  # what the scorer said of itself (e.g. its isolation)

    def counts(self, discarded: int) -> dict[str, Any]:
        out = {"resumed_prompts": self.resumed, "generated_this_run": self.generated,
               "torn_lines_discarded": discarded, "seconds_this_run": round(self.seconds, 3)}
        if self.retries is not None:
            out["http_retries"] = self.retries
        return out


def _sample(cfg: SynthConfig, chunks: list[list[PromptItem]], log: DurableLog) -> _Run:
    """Sample, score (and revise) the prompts of ``chunks`` not yet in ``log``, one chunk at a
    time, each appended to the log when done."""
    from tqdm.auto import tqdm

    t0 = time.time()
    done = {e["index"] for e in log.entries[1:]}
    run = _Run(resumed=sum(p.index in done for c in chunks for p in c))
    todo = [c for c in chunks if any(p.index not in done for p in c)]
    if not todo:
        run.backend = (cfg.generator.describe() if cfg.generator is not None
                       else {"backend": cfg.backend, "model": cfg.model})
        run.seconds = time.time() - t0
        return run
    generator = make_backend(cfg)
    check_prompt_lengths(generator, [p for c in todo for p in c], cfg.max_new_tokens,
                         cfg.prompts)
    prompt_ids = _PromptIds(generator)
    scorer = cfg.scorer_obj
    if scorer is None:
        from prefalign.scoring import build_scorer

        scorer = build_scorer(resolve_model_refs(cfg.scorer, policy=cfg.model or None,
                                                 ref=None), device=cfg.device)
    bar = tqdm(total=sum(map(len, chunks)), initial=run.resumed, unit="prompt", desc="synth",
               disable=not cfg.progress)
    sampling_since = time.time()  # the rate leaves out loading the model and scorer
    reviser = make_reviser(cfg)
    critic = make_critic(cfg, reviser) if reviser is not None else None
    for chunk in todo:
        completions = generator.generate(chunk, cfg.n, cfg.sampling(), cfg.seed)
        scores = score_chunk(scorer, chunk, completions)
        revisions = (revise_chunk(reviser, lambda i, c: score_chunk(scorer, i, c), chunk,
                                  completions, scores, max_new_tokens=cfg.max_new_tokens,
                                  critic=critic, seed=cfg.seed)
                     if reviser is not None else [None] * len(chunk))
        log.append(_entry(item, comps, sc, prompt_ids, rev) for item, comps, sc, rev in
                   zip(chunk, completions, scores, revisions) if item.index not in done)
        new = [item for item in chunk if item.index not in done]
        done.update(item.index for item in new)
        run.generated += cfg.n * len(new)
        bar.update(len(new))
        elapsed = max(time.time() - sampling_since, 1e-9)
        bar.set_postfix(responses_s=f"{run.generated / elapsed:.1f}")
    bar.close()
    run.scorer_stats.update(scorer.stats)
    run.scorer_details = scorer.describe()
    run.backend = generator.describe()
    run.retries = getattr(generator, "retries", None)
    run.seconds = time.time() - t0
    return run


def write_output(cfg: SynthConfig, opts: PairOptions, prompts: list[PromptItem],
                 entries: list[dict], fp: dict[str, Any], run: _Run, out_path: Path,
                 manifest_path: Path, *, logs: list[Path], workers: dict | None = None,
                 discarded: int = 0) -> SynthResult:
    """The records built from the log ``entries`` (in prompt order), written with the manifest."""
    records, counts = build_from_log(entries, prompts, opts, cfg.filter_specs())
    counts.update(prompts=len(prompts), **run.counts(discarded))
    save_records(records, out_path)
    manifest = {
        "output": str(out_path), "kind": output_kind(cfg.pairs),
        "log": str(logs[0]) if len(logs) == 1 else [str(p) for p in logs],
        "model": cfg.model, "backend": run.backend, "scorer": fp["scorer"],
        "sampling": fp["sampling"], "n": cfg.n, "seed": cfg.seed,
        "seed_rule": "sample j of prompt i uses sha256(f'{seed}:{i}:{j}')[:8] >> 1",
        "prompts": fp["prompts"],
        "pairs": dataclasses.asdict(opts), "filters": [f.to_dict() for f in cfg.filter_specs()],
        "revise": cfg.revise or None, "critic": cfg.critic or None,
        "counts": counts,
        "scorer_stats_this_run": dict(run.scorer_stats),
        "scorer_details_this_run": run.scorer_details,
    }
    if workers is not None:
        manifest["workers"] = workers
    atomic_write_json(manifest_path, manifest)
    return SynthResult(out_path, manifest_path, records, counts)


def merge_shards(cfg: SynthConfig, opts: PairOptions, out_path: Path, manifest_path: Path, *,
                 prompts: list[PromptItem] | None = None, fp: dict[str, Any] | None = None
                 ) -> SynthResult:
    """The output of every worker's log (`prefalign.synth.shards`); the same on every rerun."""
    if prompts is None:
        prompts = read_prompts(cfg.prompts, field=cfg.prompt_field, split=cfg.split,
                               limit=cfg.limit)
        fp = fingerprint(cfg, prompts)
    entries, workers = merged_entries(out_path, prompts, fp, cfg.chunk_size)
    backend = (cfg.generator.describe() if cfg.generator is not None
               else {"backend": cfg.backend, "model": cfg.model, "pool": cfg.pool or None})
    return write_output(cfg, opts, prompts, entries, fp, _Run(backend=backend), out_path,
                        manifest_path, logs=[Path(s["log"]) for s in workers["shares"]],
                        workers=workers,
                        discarded=sum(s["torn_lines_discarded"] for s in workers["shares"]))


def build_from_log(entries: list[dict], prompts: list[PromptItem], opts: PairOptions,
                   filters: list[FilterSpec] = ()):
    """Records (in prompt order) and counts from the per-prompt log entries, through the pair
    ``filters`` in order (``counts["filters"]``: each one's options and what it dropped)."""
    by_index: dict[int, dict] = {}
    for e in entries:
        by_index.setdefault(e["index"], e)
    counts: dict[str, Any] = {"generated": 0, "empty": 0, "scored": 0, "unscored": 0,
                              "non_finite": 0, "failed": 0, "records": 0, "finish_length": 0}
    reasons, dropped, records, per_model = Counter(), Counter(), [], Counter()
    for item in prompts:
        e = by_index.get(item.index)
        if e is None:
            continue
        comps = e["completions"]
        counts["generated"] += len(comps)
        per_model.update(c["model"] for c in comps if c.get("model") is not None)
        counts["finish_length"] += sum(c["finish_reason"] == "length" for c in comps)
        for c, value, reason in zip(comps, e["scores"], e["reasons"]):
            if not c["text"].strip():
                counts["empty"] += 1
            elif value is None or not is_finite_score(value):
                counts["unscored"] += 1
                if value is not None or (reason or "").startswith(NON_FINITE):
                    counts["non_finite"] += 1
            else:
                counts["scored"] += 1
            if reason:
                reasons[reason.split(":")[0].strip()] += 1
                if value is not None and is_finite_score(value):
                    counts["failed"] += 1
        sampled = None
        if e.get("prompt_ids") is not None:
            sampled = SampledIds(e["tokenizer"], e["prompt_ids"],
                                 [c.get("response_ids") for c in comps])
        recs, _ = build_records(item, [c["text"] for c in comps], e["scores"], opts,
                                [c.get("num_tokens") for c in comps], dropped, sampled,
                                votes=e.get("votes"), sources=[c.get("model") for c in comps],
                                beats=e.get("beats"), notes=e.get("notes"))
        records.extend(recs)
        revised = revision_pair(item, e, opts.min_gap, dropped)
        if revised is not None:
            records.append(revised)
            counts["revision_pairs"] = counts.get("revision_pairs", 0) + 1
    if filters:
        counts["records_before_filters"] = len(records)
        records, counts["filters"] = apply_filters(records, list(filters))
    if per_model:  # a pool: how many samples each member gave
        counts["samples_per_model"] = dict(per_model)
    counts["records"] = len(records)
    counts["records_with_sampled_ids"] = sum(SAMPLED_FIELD in r.meta for r in records)
    counts["dropped"] = dict(dropped)
    # The most common reasons only: verifiers often put the wrong value in the reason, which
    # would make one key per distinct answer; the rest are counted together.
    counts["reasons"] = dict(reasons.most_common(MAX_REASONS))
    other = sum(reasons.values()) - sum(counts["reasons"].values())
    if other:
        counts["reasons"]["(other reasons)"] = other
    return records, counts
