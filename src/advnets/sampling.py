"""Drawing samples from a trained generator, deterministically for a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from advnets.atomic import atomic_path
from advnets.nets import Generator, sample_noise
from advnets.params import ModelParams


def load_generator(path: str | Path, model: ModelParams) -> Generator:
    """A generator built from model params with the weights saved at path (its output size is
    read from the weights)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    data_dim = state[f"{len(model.g_hidden) * 2}.weight"].shape[0]
    generator = Generator(model.noise_dim, model.g_hidden, data_dim, model.g_init_range)
    generator.load_state_dict(state)
    return generator.eval()


@torch.no_grad()
def draw_samples(generator: Generator, model: ModelParams, n: int, seed: int, batch_size: int = 1000) -> torch.Tensor:
    """n samples [n, data_dim] in [0, 1]; on the CPU so a seed gives the same samples anywhere."""
    rng = torch.Generator().manual_seed(seed)
    generator = generator.cpu().eval()
    batches = [generator(sample_noise(min(batch_size, n - i), model, generator=rng)) for i in range(0, n, batch_size)]
    return torch.cat(batches)


def save_samples(path: str | Path, samples: torch.Tensor) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, samples.numpy().astype(np.float32))


def load_samples(path: str | Path) -> torch.Tensor:
    return torch.from_numpy(np.load(path))
