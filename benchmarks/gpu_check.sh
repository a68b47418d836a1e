#!/bin/bash
# One GPU session's checks, run from the repository root on a CUDA machine with MNIST prepared in
# data/mnist: the step and Parzen benchmarks, epoch times as the train stage runs them, then
# configurations trained side by side (one process each) for up to SWEEP_SECONDS, their rows in
# $OUT/sweep-*.json. Output in $OUT (default ./gpu-out).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
SWEEP_SECONDS=${SWEEP_SECONDS:-300}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
{
  nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  timeout 150 python3 benchmarks/train_throughput.py --device cuda --steps 2000
  timeout 150 python3 benchmarks/parzen_speed.py --device cuda --official-batches 1
  timeout 150 python3 benchmarks/epoch_time.py --device cuda --epochs 6 --select --set select.every=3 2>/dev/null
} 2>&1 | tee "$OUT/bench.txt"

# The ablation at the paper's length: each line one configuration, side by side.
sweep=(
  "seed3 --set train.seed=3"
  "seed4 --set train.seed=4"
  "alternating --set train.update=alternating"
  "nodropout --set model.d_keep_input=1.0 --set model.d_keep_hidden=1.0"
  "dscale1 --set train.d_loss_scale=1.0"
  "momentum05 --set train.momentum_end=0.5"
)
for config in "${sweep[@]}"; do
  set -- $config; name=$1; shift
  timeout "$SWEEP_SECONDS" python3 benchmarks/epoch_time.py --device cuda --epochs 250 --select "$@" \
    --json "$OUT/sweep-$name.json" > "$OUT/log-$name.txt" 2>/dev/null &
done
wait
for config in "${sweep[@]}"; do set -- $config; tail -n 2 "$OUT/log-$1.txt"; rm "$OUT/log-$1.txt"; done
