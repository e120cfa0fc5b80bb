#!/usr/bin/env bash
# The prepared check for a lent GPU (issue #18 item 3): one NVIDIA GPU, the packages the machine
# carries, <= 8 min. Each step has its own time limit, so one that hangs cannot eat the others':
#   1. LLaMA 1.3B shape (24 x 2048, seq 2048), bf16, fixed steps through the ScaleDAG Trainer beside
#      HF transformers on the same weights; MFU against the device's published bf16 peak
#      (benchmarks/train_gpu.py; the Transformer-Engine spec where TE is installed, else SDPA)   150 s
#   2. GPT-2 small (12 x 768, seq 1024), bf16, the small scale's throughput points on random
#      tokens (workflow.bench.train: the real Trainer, no corpus needed)                         100 s
#   3. the block micro-benchmark, dense vs 2:4 sparse in one process (benchmarks/efficiency_gpu.py) 100 s
#   4. an lm-eval pass on the GPU: the tiny DAG's MatGPT runs, trained and scored zero-shot there
#      (Megatron initialises on the GPU, so lm-eval's forward passes run on it)                    120 s
# Rows land under benchmarks/results/ with the device name in each file name; a summary of every
# step (ok / failed / timed out, seconds) goes to benchmarks/results/gpu_check_<device>.json.
#     bash benchmarks/gpu_check.sh            # from the repository root or anywhere
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
export PY WANDB_MODE=offline PATH="$(dirname "$(command -v "$PY")"):$PATH"
export OUT=benchmarks/results
mkdir -p "$OUT"

DEVICE=$("$PY" -c 'import torch, sys; sys.exit(1) if not torch.cuda.is_available() else print(torch.cuda.get_device_name())') || {
  echo "error: benchmarks/gpu_check.sh needs a CUDA GPU and none is visible; nothing was measured" >&2
  exit 2
}
SLUG=$(echo "$DEVICE" | sed 's/[^A-Za-z0-9]\+/-/g; s/^-//; s/-$//')
export DEVICE SLUG
SUMMARY="$OUT/gpu_check_$SLUG.json"
STEPS=()
echo "gpu_check on $DEVICE ($(date -u +%FT%TZ))"

step() {  # step NAME LIMIT_S COMMAND...: run it (a function of this file: by name), record status and seconds
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS rc=0
  if declare -F "$1" > /dev/null; then
    timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $1" || rc=$?
  else
    timeout --kill-after=10 "$limit" "$@" || rc=$?
  fi
  local status=ok
  [ "$rc" -eq 124 ] && status=timed_out
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && status="failed_rc_$rc"
  STEPS+=("{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $((SECONDS - t0))}")
  echo "== $name: $status in $((SECONDS - t0)) s"
}

step llama_1.3b_bf16 150 "$PY" benchmarks/train_gpu.py --rounds 2 --steps-per-round 5 --warmup 3 \
  --out "$OUT/train_gpu_$SLUG.json"

gpt2() {
  local spec
  spec=$(mktemp --suffix=.json)
  "$PY" - "$spec" <<'EOF' || return 1
import json, sys, tempfile
from workflow.config import load_config
from workflow.studies.benchmarks import train_spec
cfg = load_config("config.yaml", {"scale": "small"})
spec = train_spec(cfg, "efficiency", "gpt2", "gpt2-small.dp1")
spec["data"] = {"random_tokens": True}  # the step's speed, not the corpus's: no data on a lent machine
spec["scratch"] = tempfile.mkdtemp(prefix="gpu-check-gpt2-")
open(sys.argv[1], "w").write(json.dumps(spec))
EOF
  "$PY" -m workflow.bench.train --spec "$(cat "$spec")" --out "$OUT/gpu_check_gpt2_$SLUG.jsonl"
}
step gpt2_small_bf16 100 gpt2

step block_dense_vs_sparse24 100 "$PY" benchmarks/efficiency_gpu.py --block-only

zeroshot() {
  local work data
  work=$(mktemp -d)
  # The lm-eval items (../shared/data/zeroshot, or ZEROSHOT_DIR): the DAG downloads nothing.
  data=$(realpath -m "${ZEROSHOT_DIR:-../shared/data/zeroshot}")
  [ -d "$data" ] || { echo "gpu_check: no zero-shot items at $data (set ZEROSHOT_DIR)" >&2; return 3; }
  printf 'zeroshot:\n  data_dir: %s\n' "$data" > "$work/zeroshot.yaml"
  snakemake -s "$PWD/Snakefile" -d "$work" --configfile "$PWD/config.yaml" "$work/zeroshot.yaml" --cores all \
    --resources gpu=1 --config scale=tiny -- results/tiny/matgpt/tables/zeroshot.csv || return 1
  "$PY" - "$work" "$OUT/gpu_check_zeroshot_$SLUG.jsonl" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path
work, out, device = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = [dict(json.loads(p.read_text()), device=device) for p in sorted(work.glob("results/tiny/matgpt/runs/*/zeroshot/*.json"))]
if not rows:
    sys.exit("gpu_check: the zero-shot pass wrote no results")
Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
print(f"zero-shot: {len(rows)} rows -> {out}")
EOF
}
step lm_eval_zeroshot 120 zeroshot

printf '{"benchmark": "gpu_check", "device": "%s", "steps": [%s]}\n' "$DEVICE" "$(IFS=,; echo "${STEPS[*]}")" > "$SUMMARY"
cat "$SUMMARY"
! grep -q '"status": "\(failed\|timed\)' "$SUMMARY"
