#!/bin/bash
# A GPU session's checks, run from the repository root on a CUDA machine with MNIST prepared in
# data/mnist: the GPU tests, the step and Parzen benchmarks, epoch times as the train stage runs
# them; then each argument, a configuration "NAME --set key=value ...", trained side by side for
# RUN_EPOCHS epochs (at most RUN_SECONDS seconds), its rows in $OUT/run-NAME.json and the generator
# of its best epoch on validation in $OUT/gen-NAME.pt. Back here, `advnets record run-NAME.json
# gen-NAME.pt` scores each and logs it as a training run; a run the timeout cut (SIGTERM: it ends
# after the epoch under way) is recorded up to its last scored epoch, or with --epochs E at a length
# common to the seeds. At most three configurations: the device tool brings back 8 files. One run
# alone took 0.27 s an epoch on an H200; side by side, each is slower (not yet measured).
# CHECKS=0 skips the tests and benchmarks, to give the runs the whole call.
#   bash benchmarks/gpu_check.sh "seed3 --set train.seed=3" "alternating --set train.update=alternating"
#   CHECKS=0 RUN_EPOCHS=2000 RUN_SECONDS=540 bash benchmarks/gpu_check.sh "seed2 --set train.seed=2"
set -u
configs=("$@")
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
RUN_EPOCHS=${RUN_EPOCHS:-250}; RUN_SECONDS=${RUN_SECONDS:-300}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
[ "${CHECKS:-1}" = 0 ] || {
  nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  timeout 150 python3 -m pytest -o addopts= -q -rs -p no:cacheprovider tests/gpu tests/unit/test_updates.py \
    tests/unit/test_trainer.py tests/unit/test_schedule.py tests/unit/test_discriminator_pass.py tests/unit/test_loop.py
  timeout 150 python3 benchmarks/train_throughput.py --device cuda --steps 2000
  timeout 150 python3 benchmarks/parzen_speed.py --device cuda --official-batches 1
  timeout 150 python3 benchmarks/dataset_steps.py --device cuda --steps 20
  timeout 150 python3 benchmarks/epoch_time.py --device cuda --epochs 6 --select --set select.every=3 \
    2>"$OUT/err.txt" || { echo "epoch_time failed:"; tr '\r' '\n' <"$OUT/err.txt" | grep -v "it/s" | tail -n 15; }
} 2>&1 | tee "$OUT/bench.txt"

# Each run's stdout and stderr go to log-NAME.txt and err-NAME.txt; a run that failed (not cut by
# the timeout) shows its error. The logs are removed: $OUT brings back at most 8 files.
for config in "${configs[@]}"; do
  set -- $config; name=$1; shift
  ( timeout "$RUN_SECONDS" python3 benchmarks/epoch_time.py --device cuda --epochs "$RUN_EPOCHS" --select "$@" \
      --json "$OUT/run-$name.json" --save "$OUT/gen-$name.pt" > "$OUT/log-$name.txt" 2> "$OUT/err-$name.txt"
    echo $? > "$OUT/rc-$name.txt" ) &
done
wait
for config in "${configs[@]}"; do
  set -- $config; name=$1; rc=$(cat "$OUT/rc-$name.txt")
  echo "$name (exit $rc):"; tail -n 2 "$OUT/log-$name.txt"
  case $rc in 0|124) ;; *) tr '\r' '\n' <"$OUT/err-$name.txt" | grep -v "it/s" | tail -n 15 ;; esac
  rm -f "$OUT/log-$name.txt" "$OUT/err-$name.txt" "$OUT/rc-$name.txt"
done
rm -f "$OUT/err.txt"
