#!/bin/bash
# A GPU session's checks, run from the repository root on a CUDA machine with MNIST prepared in
# data/mnist: the GPU tests, the step and Parzen benchmarks, epoch times as the train stage runs
# them; then each argument, a configuration "NAME --set key=value ...", trained side by side for
# RUN_EPOCHS epochs (at most RUN_SECONDS seconds), its rows in $OUT/run-NAME.json.
#   bash benchmarks/gpu_check.sh "seed3 --set train.seed=3" "alternating --set train.update=alternating"
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
RUN_EPOCHS=${RUN_EPOCHS:-250}; RUN_SECONDS=${RUN_SECONDS:-300}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
{
  nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  timeout 150 python3 -m pytest -q -rs -p no:cacheprovider tests/test_cuda_graph.py tests/test_updates.py \
    tests/test_trainer.py tests/test_schedule.py tests/test_discriminator_pass.py
  timeout 150 python3 benchmarks/train_throughput.py --device cuda --steps 2000
  timeout 150 python3 benchmarks/parzen_speed.py --device cuda --official-batches 1
  timeout 150 python3 benchmarks/epoch_time.py --device cuda --epochs 6 --select --set select.every=3 2>/dev/null
} 2>&1 | tee "$OUT/bench.txt"

for config in "$@"; do
  set -- $config; name=$1; shift
  timeout "$RUN_SECONDS" python3 benchmarks/epoch_time.py --device cuda --epochs "$RUN_EPOCHS" --select "$@" \
    --json "$OUT/run-$name.json" > "$OUT/log-$name.txt" 2>/dev/null &
done
wait
for log in "$OUT"/log-*.txt; do [ -e "$log" ] && { echo "$log"; tail -n 3 "$log"; rm "$log"; }; done
