"""The paper's networks (paper-2014-spec.md section 2) and the noise prior.

G: noise -> ReLU layers -> sigmoid pixels. D: maxout layers with dropout on the input of every
layer -> one logit (the sigmoid lives in the loss). Sizes, pieces, dropout and init ranges come
from params, so other datasets reuse this code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from advnets.params import ModelParams


class Maxout(nn.Module):
    """Max over `pieces` *contiguous* outputs of one linear map: view [B, units, pieces], max."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, self.units, self.pieces).amax(dim=-1)


def _init_uniform(module: nn.Module, init_range: float) -> None:
    """Every Linear weight ~ U(-init_range, init_range), every bias 0 (pylearn2's irange)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -init_range, init_range)
            nn.init.zeros_(layer.bias)


class Generator(nn.Sequential):
    def __init__(self, noise_dim: int, hidden: list[int], out_features: int, init_range: float):
        layers: list[nn.Module] = []
        width = noise_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers += [nn.Linear(width, out_features), nn.Sigmoid()]
        super().__init__(*layers)
        _init_uniform(self, init_range)

    @property
    def output_layer(self) -> nn.Linear:
        return self[-2]

    def set_output_bias_to_data_mean(self, images: torch.Tensor) -> None:
        """Output bias = logit of the per-pixel mean of the training images, clipped as the code
        (in float64: 1 - 1e-7 does not exist in float32)."""
        mean = images.double().mean(dim=0).clamp(1e-7, 1 - 1e-7)
        with torch.no_grad():
            self.output_layer.bias.copy_(torch.logit(mean))


class Discriminator(nn.Sequential):
    def __init__(
        self,
        in_features: int,
        units: list[int],
        pieces: int,
        init_range: float,
        keep_input: float,
        keep_hidden: float,
    ):
        # nn.Dropout is inverted dropout: keep p scales the kept inputs by 1/p (0.8 -> 1.25).
        layers: list[nn.Module] = []
        width, keep = in_features, keep_input
        for size in units:
            layers += [nn.Dropout(1 - keep), Maxout(width, size, pieces)]
            width, keep = size, keep_hidden
        layers += [nn.Dropout(1 - keep), nn.Linear(width, 1)]
        super().__init__(*layers)
        _init_uniform(self, init_range)
        self.keeps = [keep_input] + [keep_hidden] * len(units)

    def layers(self) -> Iterator[tuple[float, nn.Linear, int | None]]:
        """Per layer: the keep probability of the dropout on its input, its linear map, and its
        maxout pieces (None for the output layer)."""
        for keep, layer in zip(self.keeps, list(self)[1::2]):
            if isinstance(layer, Maxout):
                yield keep, layer.linear, layer.pieces
            else:
                yield keep, layer, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape [B]."""
        return super().forward(x).squeeze(-1)


def build_nets(model: ModelParams, data_dim: int) -> tuple[Generator, Discriminator]:
    generator = Generator(model.noise_dim, model.g_hidden, data_dim, model.g_init_range)
    discriminator = Discriminator(
        data_dim,
        model.d_units,
        model.d_pieces,
        model.d_init_range,
        model.d_keep_input,
        model.d_keep_hidden,
    )
    return generator, discriminator


def sample_noise(
    n: int,
    model: ModelParams,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """z ~ the prior: uniform on (-sqrt(3), sqrt(3)) (unit variance, the paper's MNIST) or N(0, I)."""
    shape = (n, model.noise_dim)
    if model.noise == "gaussian":
        return torch.randn(shape, device=device, generator=generator)
    bound = math.sqrt(3.0)
    return torch.rand(shape, device=device, generator=generator).mul_(2 * bound).sub_(bound)
