"""Every field of train's, synth's and iterate's settings is classified as changing the result
or not, so a new field cannot silently let a resume mix two runs (forgetting RESULT_FIELDS
did exactly that)."""

import dataclasses

import pytest

from prefalign.loop import iterate
from prefalign.synth import job
from prefalign.train import run_state
from prefalign.train.config import TrainConfig


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls,groups", [
    (TrainConfig, lambda: [set(run_state.RESULT_FIELDS), set(run_state.ADDED_FIELDS),
                           set(run_state.FINGERPRINTED), set(run_state.NOT_RESULT_FIELDS)]),
    (job.SynthConfig, lambda: [set(job.LOG_FIELDS), set(job.OUTPUT_FIELDS),
                               set(job.NOT_RESULT_FIELDS)]),
    (iterate.IterateConfig, lambda: [set(iterate.ROUND_FIELDS), set(iterate.NOT_RESULT_FIELDS)]),
], ids=lambda v: getattr(v, "__name__", ""))
def test_every_settings_field_is_classified_once(cls, groups):
    groups = groups()
    everything = set().union(*groups)
    assert _fields(cls) - everything == set(), f"{cls.__name__}: not classified"
    assert everything - _fields(cls) == set(), f"{cls.__name__}: classified but not a field"
    assert sum(len(g) for g in groups) == len(everything), "a field in two classes"


def test_synth_log_fields_change_the_fingerprint(tmp_path):
    """Each field synth calls result-changing moves its log's fingerprint (the log is refused on
    resume); --dtype and --split did not: a resume mixed bf16 and fp32 samples, or two splits."""
    from prefalign.generation.types import PromptItem

    prompts = [PromptItem(0, "a"), PromptItem(1, "b")]
    base = job.SynthConfig(model="m", prompts=str(tmp_path), scorer="verifier:a.b:c")
    changed = {"model": "m2", "n": 3, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
               "max_new_tokens": 7, "seed": 1, "backend": "vllm", "base_url": "http://x",
               "dtype": "bfloat16", "scorer": "verifier:a.b:d", "split": "test",
               "prompt_field": "question"}
    fp = job.fingerprint(base, prompts)
    for name, value in changed.items():
        other = dataclasses.replace(base, **{name: value})
        assert job.fingerprint(other, prompts) != fp, name
    # a folder's prompts by what was read from it
    assert job.fingerprint(base, [PromptItem(0, "a"), PromptItem(1, "c")]) != fp
    for name in job.OUTPUT_FIELDS + tuple(job.NOT_RESULT_FIELDS):
        value = {"pairs": "all-pairs", "min_gap": 1.0, "length_penalty": 0.1,
                 "label_threshold": 0.5, "keep_whitespace_variants": True, "output": "o2",
                 "device": "cpu", "batch_size": 3, "chunk_size": 5, "concurrency": 2,
                 "timeout": 9.0, "max_retries": 1, "trust_remote_code": True,
                 "progress": False, "filters": ["near-dup"], "shard": "1/2",
                 "merge": True, "tensor_parallel_size": 2}[name]
        assert job.fingerprint(dataclasses.replace(base, **{name: value}), prompts) == fp, name


def test_a_rounds_fingerprint_holds_its_filters_only_when_given(tmp_path):
    """Rounds recorded before --filter existed still match; a round made with filters does not
    match one without."""
    cfg = iterate.IterateConfig(model=str(tmp_path), prompts=[{"prompt": "a"}],
                                scorer="verifier:a.b:c")
    plain = iterate.round_fingerprint(cfg, 1, tmp_path)
    assert "filters" not in plain
    cfg.filters = ["near-dup:0.8"]
    assert iterate.round_fingerprint(cfg, 1, tmp_path)["filters"] == ["near-dup:0.8"]
    assert "filters" not in iterate.round_fingerprint(cfg, 0, tmp_path)  # round 0 only evaluates


def test_a_judges_principles_enter_the_fingerprints_by_content(tmp_path):
    """Editing a constitution and rerunning resumed the old log (the spec named only its path)."""
    from prefalign.generation.types import PromptItem

    principles = tmp_path / "p.txt"
    principles.write_text("Be brief\n")
    cfg = job.SynthConfig(model="m", prompts=[{"prompt": "a"}],
                          scorer=f"judge:hf:/m?principles={principles}")
    prompts = [PromptItem(0, "a")]
    before = job.fingerprint(cfg, prompts)
    principles.write_text("Be thorough\n")
    assert job.fingerprint(cfg, prompts) != before
    plain = job.SynthConfig(model="m", prompts=[{"prompt": "a"}], scorer="verifier:a.b:c")
    assert "scorer_files" not in job.fingerprint(plain, prompts)  # older logs still match


def test_a_round_that_names_ref_knows_the_reference_by_content(tmp_path):
    ref, policy = tmp_path / "ref", tmp_path / "policy"
    for folder in (ref, policy):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    cfg = iterate.IterateConfig(model=str(policy), prompts=[{"prompt": "a"}],
                                scorer="implicit:@policy,@ref", train_args={"ref_model": str(ref)})
    before = iterate.round_fingerprint(cfg, 0, policy)
    (ref / "config.json").write_text('{"changed": 1}')
    assert iterate.round_fingerprint(cfg, 0, policy) != before
