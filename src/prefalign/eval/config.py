"""The settings of `prefalign eval` and `prefalign report`: one schema each (see
`prefalign.settings`); `evaluate_policy` and `build_report` take the same names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefalign.generation.options import BACKEND_HELP, SAMPLING_HELP, backend_rule
from prefalign.settings import Settings, at_least, one_of, optional, positive


@dataclass
class EvalConfig(Settings):
    model: str = ""
    ref_model: str | None = None
    data: str | None = None
    prompts: str | None = None
    output: str = ""
    beta: float = 0.1
    max_length: int | None = None
    num_samples: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    sample_batch_size: int = 16
    judge: str | None = None
    dtype: str = "float32"
    device: str | None = None
    trust_remote_code: bool = False
    backend: str = "hf"
    base_url: str | None = None
    served_model: str | None = None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 5

    def kwargs(self) -> dict[str, Any]:
        """`evaluate_policy`'s keyword arguments (``model`` and ``data`` are its first two)."""
        values = dataclasses.asdict(self)
        values["ref_path"] = values.pop("ref_model")
        values.pop("model"), values.pop("data")
        return values

    def check(self, origins: dict[str, str]) -> None:
        if self.data is None and self.prompts is None:
            from prefalign.settings import ConfigError

            raise ConfigError("--data, --prompts or both are required")


EvalConfig.HELP = {
    "model": "policy folder (Hugging Face format)",
    "ref_model": "reference model; enables rewards, displacement, idealized ranking accuracy "
                 "and KL (default: none)",
    "data": "pairwise preference data file (default: none; --data, --prompts or both are "
            "required)",
    "prompts": "prompts to sample from (.jsonl/.json/.csv/.parquet with a 'prompt' field, or "
               ".txt one per line; default: none)",
    "output": "folder for eval.json",
    "beta": "β of the implicit reward",
    "max_length": "tokens per --data example, longer ones cut (default: no limit)",
    "num_samples": "samples per prompt",
    **SAMPLING_HELP,
    "max_new_tokens": "tokens per sampled response at most",
    "sample_batch_size": "hf back end: rows (prompt x sample) per generate call",
    "judge": "judge model, checked for preference leakage (default: none)",
    **BACKEND_HELP,
    "backend": "generation back end that samples the --prompts: hf | vllm | openai",
    "dtype": "weight dtype",
    "device": "cpu, cuda, cuda:N, ... (default: cuda when available, else cpu)",
    "served_model": "openai back end: the name the server serves the policy under (default: "
                    "the --model value)",
}
EvalConfig.RULES = {
    "beta": (positive, "a finite number > 0"),
    "num_samples": (at_least(1), ">= 1"),
    "max_length": (optional(at_least(2)), ">= 2, or null"),
    "sample_batch_size": (at_least(1), ">= 1"),
    "dtype": one_of("float32", "bfloat16", "float16"),
    "backend": backend_rule(),
}
EvalConfig.REQUIRED = ("model", "output")


@dataclass
class ReportConfig(Settings):
    run_dir: str = ""
    eval_json: str | None = None
    output: str | None = None


ReportConfig.HELP = {
    "run_dir": "the run folder (with metrics.jsonl)",
    "eval_json": "an eval.json from `prefalign eval` (default: RUN/eval.json or "
                 "RUN/eval/eval.json if present)",
    "output": "report folder (default: RUN/report)",
}
ReportConfig.POSITIONAL = ("run_dir",)
ReportConfig.REQUIRED = ("run_dir",)
