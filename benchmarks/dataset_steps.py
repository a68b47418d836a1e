"""Training-step time of the paper's CIFAR-10 and TFD nets at full size (params.yaml), on random
data of the right shape: seconds per simultaneous step and the minutes an epoch would take.

    python benchmarks/dataset_steps.py [--device cpu|cuda] [--steps 3] [--gan cifar10.fc ...]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from advnets.data.registry import GANS
from advnets.gan.updates import Nets, simultaneous_step
from advnets.params import load_params

# Training images per epoch: CIFAR-10's first 40,000; TFD's fold 0 unlabeled images depend on the
# user's file, so its epoch is not extrapolated.
EPOCH_IMAGES = {"cifar10": 40_000}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(gan: str, device: torch.device, steps: int) -> float:
    section, shape = load_params().gan(gan), GANS[gan].image_shape
    torch.manual_seed(0)
    nets = Nets.create(section.model, section.train, math.prod(shape), shape)
    nets.generator.to(device).train()
    nets.discriminator.to(device).train()
    x = torch.rand(section.train.batch_size, math.prod(shape), device=device)
    simultaneous_step(nets, x, 0)  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        simultaneous_step(nets, x, 0)
    sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gan", action="append", choices=list(GANS))
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}")
    params = load_params()
    for gan in args.gan or ["cifar10.fc", "cifar10.conv", "tfd.pretrain"]:
        seconds = seconds_per_step(gan, device, args.steps)
        batch = params.gan(gan).train.batch_size
        epoch = EPOCH_IMAGES.get(gan.split(".")[0])
        per_epoch = f", {seconds * (epoch // batch) / 60:.1f} min per epoch" if epoch else ""
        print(f"{gan}: {seconds:.3f} s per step (batch {batch}){per_epoch}")


if __name__ == "__main__":
    main()
