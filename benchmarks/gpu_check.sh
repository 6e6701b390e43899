#!/usr/bin/env bash
# The GPU half of issue #11 as one command on the lent machine (device tool), after
# benchmarks/gpu_wheels.sh ran here:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".mnist"], timeout_s=590)
# Each step has its own time limit (100 + 100 + 150 + 200 s), so the whole ends inside one
# 10-minute call; the figures land in
# $OUT (device.json, tests.txt, throughput.json, grid-*.txt, smi-*.csv). Steps:
#  1. the trainer's tests on CUDA (graphs bit for bit eager; groups run the batched products,
#     the one path on every device);
#  2. benchmarks/grid_throughput.py on cuda: a sample's groups / stacks / alone, K=3 cost (a run
#     and a network), and the whole grid's projection on one worker (--grid-workers defaults to
#     1 on a GPU) with its achieved FLOP/s;
#  3. the whole grid, 1 seed, as a study (target under 60 s), GPU busy share from nvidia-smi;
#  4. the same with --seeds 5 (target under 3 minutes), if time is left.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu_check}"; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export MNIST_DATA_DIR="$PWD/.mnist"
WORKERS="${WORKERS:-1}"
python3 -c "import torch, json; print(json.dumps({'torch': torch.__version__, 'gpu': torch.cuda.get_device_name(0)}))" | tee "$OUT/device.json"

timeout 100 python3 -m pytest -q -x tests/trainer -p no:cacheprovider 2>&1 | tail -15 | tee "$OUT/tests.txt"

timeout 100 python3 benchmarks/grid_throughput.py --device cuda --groups 3 --limit-train 10000 --json \
  > "$OUT/throughput.json" 2> "$OUT/throughput.err"; tail -3 "$OUT/throughput.err"; cat "$OUT/throughput.json"

grid() {  # grid SEEDS LIMIT_SECONDS
  local db="sqlite:////tmp/grid-$1.db"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 1000 > "$OUT/smi-$1.csv" &
  local smi=$!
  local start; start=$(date +%s.%N)
  timeout "$2" python3 -m search grid --device cuda --seeds "$1" --workers "$WORKERS" --storage "$db" \
    --study-name "grid-$1" --compile off > "$OUT/grid-$1.txt" 2>&1
  local rc=$?
  kill "$smi"
  python3 - "$1" "$rc" "$start" "$OUT/smi-$1.csv" <<'PY' | tee -a "$OUT/grid-$1.txt"
import sys, time
seeds, rc, start, smi = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
busy = [float(line.split(",")[0]) for line in open(smi) if line.strip()]
print(f"grid, {seeds} seed(s): exit {rc}, {time.time() - start:.0f} s wall, GPU busy {sum(busy) / max(len(busy), 1):.0f}% (mean of {len(busy)} samples)")
PY
}
grid 1 150
grid 5 200
