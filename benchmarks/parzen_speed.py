"""Wall time of the paper's Parzen protocol: advnets' estimator against the official algorithm.

The full protocol: 10 sigmas x 1,000 validation points, then 10,000 test points, against 10,000
samples (here real training images stand in for samples; the cost does not depend on them). The
official algorithm (parzen_ll.py) broadcasts the differences of a batch of points against every
sample for each sigma; it is timed on a few batches, in numpy float32 (Theano's floatX), and
extrapolated to the same 20,000 point evaluations.

    python benchmarks/parzen_speed.py [--device cpu|cuda] [--official-batches 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from advnets.data.mnist import load_mnist
from advnets.params import load_params
from advnets.parzen import evaluate


def official_batch(points: np.ndarray, samples: np.ndarray, sigma: float) -> np.ndarray:
    """parzen_ll.py's per-batch computation, in numpy."""
    a = (points[:, None, :] - samples[None, :, :]) / sigma
    t = -0.5 * (a**2).sum(axis=2)
    t_max = t.max(axis=1, keepdims=True)
    lse = t_max[:, 0] + np.log(np.exp(t - t_max).sum(axis=1))
    d = points.shape[1]
    return lse - np.log(len(samples)) - d * np.log(sigma * np.sqrt(2 * np.pi))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", default="data", help="root holding mnist/ (run `dvc repro download`)")
    parser.add_argument("--official-batches", type=int, default=2)
    parser.add_argument("--official-batch-size", type=int, default=100)
    args = parser.parse_args()
    device = torch.device(args.device)
    sigmas = load_params().parzen.sigmas

    samples = load_mnist("train", args.data)[0][:10_000]
    valid = load_mnist("valid", args.data)[0][:1_000]
    test = load_mnist("test", args.data)[0]
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    on_device = samples.to(device)
    evaluate(on_device[:500], valid[:100], test[:100], sigmas)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = evaluate(on_device, valid, test, sigmas)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ours = time.perf_counter() - start
    print(
        f"advnets, full protocol: {ours:.2f} s "
        f"(sigma {result.sigma:.4f}, test LL {result.test_ll_mean:.2f} ± {result.test_ll_se:.2f})"
    )

    mus = samples.numpy()
    batch = test[: args.official_batch_size].numpy()
    start = time.perf_counter()
    for _ in range(args.official_batches):
        official_batch(batch, mus, result.sigma)
    per_point = (time.perf_counter() - start) / (args.official_batches * len(batch))
    evaluations = len(sigmas) * len(valid) + len(test)
    official = per_point * evaluations
    print(
        f"official algorithm: {per_point * 1e3:.1f} ms per point x {evaluations} point evaluations "
        f"= {official:.0f} s (extrapolated from {args.official_batches} batches of {len(batch)})"
    )
    print(f"speed-up: {official / ours:.0f}x")


if __name__ == "__main__":
    main()
