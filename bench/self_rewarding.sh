#!/usr/bin/env bash
# Self-rewarding rounds on the demo's task, against the verifier-scored rounds, on the same
# prompts, samples and training settings; the held-out eval is always the task's verifier.
#
#   prefalign demo --output runs/demo          # once: the SFT model and the task files
#   bash bench/self_rewarding.sh runs/demo [OUT]
#
# Runs (each `prefalign iterate`, 300 prompts, 4 samples each, rpo, 2 rounds): the verifier;
# selfjudge:@policy; implicit:@policy,@ref from the SFT model; implicit:@policy,@ref after one
# verifier round (SPA-style: a seed round, then the policy labels against the SFT reference).
set -euo pipefail
DEMO=${1:?give the demo run folder}
OUT=${2:-$(mktemp -d)}
PY=${PYTHON:-python}
SFT=$DEMO/sft/model
V="verifier:prefalign.demo.addition:verify"
mkdir -p "$OUT"
head -300 "$DEMO/task/prompts.jsonl" > "$OUT/prompts.jsonl"
printf 'train_args:\n  scheduler: constant\n  logging_steps: 5\n' > "$OUT/base.yaml"
printf 'train_args:\n  scheduler: constant\n  logging_steps: 5\n  ref_model: %s\n' "$SFT" > "$OUT/ref.yaml"
run() {
  local name=$1; shift
  echo "== $name"
  $PY -m prefalign.cli iterate --output "$OUT/$name" --prompts "$OUT/prompts.jsonl" \
    --eval-prompts "$DEMO/task/heldout.jsonl" --n 4 --pairs west-of-n --temperature 1.0 \
    --max-new-tokens 8 --chunk-size 100 --batch-size 512 --objective rpo --lr 1e-4 \
    --train-batch-size 32 --epochs 2 --eval-scorer "$V" --no-progress "$@" 2>&1 \
    | grep -E "^round|^final"
}
run verifier --model "$SFT" --rounds 2 --scorer "$V" --config "$OUT/base.yaml"
run selfjudge --model "$SFT" --rounds 2 --scorer "selfjudge:@policy" --config "$OUT/base.yaml"
run implicit-from-sft --model "$SFT" --rounds 2 --scorer "implicit:@policy,@ref" --config "$OUT/base.yaml"
run seed --model "$SFT" --rounds 1 --scorer "$V" --config "$OUT/base.yaml"
run implicit-after-seed --model "$OUT/seed/round-1/model" --rounds 2 \
  --scorer "implicit:@policy,@ref" --config "$OUT/ref.yaml"
