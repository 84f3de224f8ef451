#!/usr/bin/env bash
# The GPU checks, as one command for a lent GPU machine (never needed by the tests or CI):
#   bash bench/gpu_device_check.sh WHEEL_DIR OUT_DIR
# WHEEL_DIR holds wheels the machine lacks (installed with --no-deps into /tmp/site). Each step
# has its own time limit and log in OUT_DIR; the benchmark writes gpu-compare.json after every
# run, so a limit that cuts it keeps the finished runs.
# Preparing them here (the 2026-11 image had torch 2.11, transformers 5.17, peft, accelerate,
# pytest-xdist, but not datasets, bitsandbytes or trl), in an ignored folder that `carry` names:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
#     --platform manylinux2014_x86_64 --platform any -d .gpu/whl \
#     datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 bitsandbytes==0.50.2 trl==1.16.0
# and, for the ZeRO-3 step, DeepSpeed's pure-Python wheel (no compiled ops) and its deps:
#   DS_BUILD_OPS=0 pip wheel --no-deps --no-build-isolation deepspeed==0.19.8 -w .gpu/whl
#   pip download --no-deps -d .gpu/whl hjson==3.1.0 ninja==1.13.2 py-cpuinfo==9.0.0 msgpack==1.2.4
# then run `bash bench/gpu_device_check.sh .gpu/whl $OUT` there (about 8 minutes; BENCH_ARGS
# narrows the benchmark, e.g. BENCH_ARGS="--models qwen2.5-1.5b --mixes chat").
# Steps:
#   1. the CUDA tests (FlexAttention backward, CUDA autocast, trainer paths, QLoRA, the varlen
#      FlashAttention path against eager, the FlexAttention cells of the family matrix) and the
#      synth and eval tests, whose HF generation runs on the GPU when one is there;
#   2. examples/synth_verifier.py on the GPU, and ZeRO-3 (examples/accelerate/deepspeed_zero3.yaml,
#      one process) against one plain process (tests/train/test_zero3.py; skipped without
#      deepspeed: it does not run on CPU processes);
#   3. bench/gpu_compare.py (prefalign vs TRL, bf16: Qwen2.5-1.5B and Llama-3.2-1B shapes, chat
#      and long-prompt mixes; FlexAttention last, where a limit cuts it first);
#   4. with RUN_SUITE=1, the rest of the suite on the GPU machine (off by default: it does not
#      fit the 8 minutes with the benchmark).
set -u
WHEELS=$1 OUT=$2
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$WHEELS"/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site  # the tests start children with sys.executable: no install
{ nvidia-smi -L; python3 -c 'import torch, transformers, peft, accelerate, datasets, pyarrow, trl
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
for m in (transformers, peft, accelerate, datasets, pyarrow, trl): print(m.__name__, m.__version__)'
} 2>&1 | tee "$OUT/env.log"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/summary.log"
  tail -n 25 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=1
}
failed=0
step gpu_tests 120 python3 -m pytest -o addopts= -v -rfE -p no:cacheprovider -n 4 tests/engine/test_cuda_engine.py \
  tests/engine/test_varlen.py tests/engine/test_families.py tests/train/test_cuda_train.py \
  tests/synth tests/eval
step synth_example 45 python3 examples/synth_verifier.py /tmp/synth-example
step zero3 90 python3 -m pytest -o addopts= -v -rfE -p no:cacheprovider tests/train/test_zero3.py
# shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
step bench 300 python3 bench/gpu_compare.py --out /tmp/bench --max-steps 12 --run-timeout 150 \
  ${BENCH_ARGS:-}
cp /tmp/bench/gpu-compare.json "$OUT/" 2>/dev/null
[ "${RUN_SUITE:-0}" = 1 ] && step suite "${SUITE_LIMIT:-120}" python3 -m pytest -o addopts= -v -rfE -p no:cacheprovider -n 8 tests \
  --ignore tests/engine/test_cuda_engine.py --ignore tests/train/test_cuda_train.py \
  --ignore tests/synth --ignore tests/eval --ignore tests/engine/test_varlen.py \
  --ignore tests/engine/test_families.py
exit $failed
