"""The settings of `prefalign eval` and `prefalign report`: one schema each (see
`prefalign.core.settings`), eval's composed with the shared sampling and back-end settings;
`evaluate_policy` and `build_report` take the same names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefalign.core.settings import ConfigError, Settings, at_least, one_of, optional, positive
from prefalign.core.settings import redefault, setting
from prefalign.generation.settings import (BackendSettings, SamplingSettings, ServedSettings,
                                           backend_rule)


@dataclass
class EvalConfig(SamplingSettings, BackendSettings, ServedSettings):
    model: str = setting("", help="policy folder (Hugging Face format)")
    ref_model: str | None = setting(None, help="reference model; enables rewards, "
                                    "displacement, idealized ranking accuracy and KL (default: "
                                    "none)")
    data: str | None = setting(None, help="pairwise preference data file (default: none; "
                               "--data, --prompts or both are required)")
    prompts: str | None = setting(None, help="prompts to sample from (.jsonl/.json/.csv/.parquet"
                                  " with a 'prompt' field, or .txt one per line; default: none)")
    output: str = setting("", help="folder for eval.json")
    beta: float = setting(0.1, help="β of the implicit reward", rule=(positive, "a finite "
                                                                          "number > 0"))
    max_length: int | None = setting(None, help="tokens per --data example, longer ones cut "
                                     "(default: no limit)",
                                     rule=(optional(at_least(2)), ">= 2, or null"))
    num_samples: int = setting(1, help="samples per prompt", rule=(at_least(1), ">= 1"))
    sample_batch_size: int = setting(16, help="hf back end: rows (prompt x sample) per "
                                     "generate call", rule=(at_least(1), ">= 1"))
    judge: list[str] = setting(
        factory=list, help="an LLM judge of the policy's first sample per --prompts prompt "
                           "against the --baseline's, in both orders: a generator spec (model "
                           "folder, hf:PATH, vllm:PATH, openai:URL#MODEL); give it twice for two "
                           "judges and their agreement (κ); each is checked for preference "
                           "leakage (default: none)")
    baseline: str | None = setting(None, help="what the judge compares the policy with: a model "
                                   "folder (sampled as the policy is) or a .jsonl/.json file "
                                   "with a 'response' per prompt, in the prompts' order "
                                   "(default: --ref-model's samples)")
    lc_feature: list[str] = setting(
        factory=list, help="what the length-controlled win rate controls for besides the "
                           "length gap in tokens, policy minus baseline: words, lines, "
                           "markdown (headers, list items, bold, code fences) or the user's "
                           "MODULE:FUNCTION (text -> number); repeat for several (default: "
                           "length only)")
    bootstrap: int = setting(1000, help="resamples of the judged win rate's 95% interval",
                             rule=(at_least(10), ">= 10"))
    patterns: str | None = setting(None, help="a file of regular expressions, one per line (a "
                                   "behaviour such as refusals): the share of the policy's and "
                                   "the baseline's samples matching any (default: none)")
    served_model: str | None = setting(None, help="openai back end: the name the server serves "
                                       "the policy under (default: the --model value)")
    # the shared settings, with eval's defaults
    temperature: float = redefault(SamplingSettings, "temperature", 1.0)
    max_new_tokens: int = redefault(SamplingSettings, "max_new_tokens", 64,
                                    help="tokens per sampled response at most")
    backend: str = redefault(BackendSettings, "backend", "hf", rule=backend_rule(),
                             help="generation back end that samples the --prompts: hf | vllm |"
                                  " openai")
    dtype: str = redefault(BackendSettings, "dtype", "float32", help="weight dtype",
                           rule=one_of("float32", "bfloat16", "float16"))
    device: str | None = redefault(BackendSettings, "device", None, help=(
        "cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)"))

    REQUIRED = ("model", "output")
    REPEATED = frozenset({"judge", "lc_feature"})

    def kwargs(self) -> dict[str, Any]:
        """`evaluate_policy`'s keyword arguments (``model`` and ``data`` are its first two)."""
        values = dataclasses.asdict(self)
        values["ref_path"] = values.pop("ref_model")
        values.pop("model"), values.pop("data")
        return values

    def check(self, origins: dict[str, str]) -> None:
        if self.data is None and self.prompts is None:
            raise ConfigError("--data, --prompts or both are required")


@dataclass
class ReportConfig(Settings):
    run_dir: str = setting("", help="the run folder (with metrics.jsonl)")
    eval_json: str | None = setting(None, help="an eval.json from `prefalign eval` (default: "
                                    "RUN/eval.json or RUN/eval/eval.json if present)")
    output: str | None = setting(None, help="report folder (default: RUN/report)")

    POSITIONAL = ("run_dir",)
    REQUIRED = ("run_dir",)


@dataclass
class AuditConfig(Settings):
    data: str = setting("", help="the preference file to audit (any format prefalign train "
                                 "reads); it is never changed")
    eval_data: str | None = setting(None, help="a held-out file (prompts or preference data): "
                                    "its prompts found in DATA are listed as leakage (default: "
                                    "none)")
    model: str | None = setting(None, help="a model folder: lengths in its tokens, rows "
                                "--max-length truncates, the CHES distribution (default: none)")
    ref_model: str | None = setting(None, help="a reference model folder: suspected label noise "
                                    "and, with --model, the implicit reward margins (default: "
                                    "none)")
    max_length: int | None = setting(None, help="list rows longer than this many tokens, "
                                     "counted by --model's tokenizer (default: none)",
                                     rule=(optional(at_least(2)), ">= 2, or null"))
    beta: float = setting(0.1, help="β of the implicit reward margins",
                          rule=(positive, "a finite number > 0"))
    noise_threshold: float = setting(
        10.0, help="a pair with log π_ref(chosen) − log π_ref(rejected) below minus this is "
                   "listed as suspected label noise", rule=(positive, "a finite number > 0"))
    output: str | None = setting(None, help="report folder (default: STEM.audit beside DATA)")
    device: str | None = setting(None, help="where the models run: cpu, cuda, cuda:N, ... "
                                 "(default: cuda when available, else cpu)")

    POSITIONAL = ("data",)
    REQUIRED = ("data",)
    FLAGS = {"eval_data": "--eval"}
