"""Drawing samples from a trained generator, deterministically for a seed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from advnets.atomic import atomic_path
from advnets.gan.build import build_generator
from advnets.gan.nets import StackedGenerator, sample_noise
from advnets.params import ModelParams


def load_generator(
    path: str | Path,
    model: ModelParams,
    image_shape: tuple[int, int, int] | None = None,
    first_stage: ModelParams | None = None,
) -> torch.nn.Module:
    """A generator built from model params with the weights saved at path. Its output size is
    image_shape's, or read from the weights (MNIST). first_stage: the model of the G that TFD's
    second stage stacks on."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if image_shape is None:
        data_dim = state[f"{len(model.g_hidden) * 2}.weight"].shape[0]
    else:
        data_dim = math.prod(image_shape)
    if first_stage is None:
        generator = build_generator(model, data_dim, image_shape)
    else:
        pretrained = build_generator(first_stage, data_dim, image_shape)
        generator = StackedGenerator(build_generator(model, first_stage.noise_dim), pretrained)
    generator.load_state_dict(state)
    return generator.eval()


@torch.no_grad()
def draw_samples(generator: torch.nn.Module, model: ModelParams, n: int, seed: int, batch_size: int = 1000) -> torch.Tensor:
    """n samples [n, data_dim] (pixels in [0, 1] but for CIFAR-10's linear output); on the CPU so a seed
    gives the same samples anywhere."""
    rng = torch.Generator().manual_seed(seed)
    generator = generator.cpu().eval()
    batches = [generator(sample_noise(min(batch_size, n - i), model, generator=rng)) for i in range(0, n, batch_size)]
    return torch.cat(batches)


def save_samples(path: str | Path, samples: torch.Tensor) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, samples.numpy().astype(np.float32))


def load_samples(path: str | Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path))


def for_display(flat: torch.Tensor, display: str = "unit") -> torch.Tensor:
    """Flat images mapped to [0, 1] for viewing. "unit": already there, unchanged. "gcn" (contrast-
    normalised data, as pylearn2's CIFAR10.adjust_for_viewer): each image over its own max |x|,
    then (x + 1) / 2; an all-zero image shows as 0.5."""
    if display == "unit":
        return flat
    if display == "gcn":
        peak = flat.abs().amax(dim=1, keepdim=True)
        return (flat / torch.where(peak > 0, peak, 1.0) + 1) / 2
    raise ValueError(f"unknown display {display!r}: expected 'unit' or 'gcn'")
