"""The paper's networks (docs/fidelity.md, "MNIST setup" and "Other datasets") and the noise prior.

G: noise -> hidden layers (ReLU on MNIST; ReLU then sigmoid on TFD and CIFAR-10) -> sigmoid pixels
(linear for CIFAR-10's contrast-normalised images). D: maxout layers with dropout on the input of
every layer -> one logit (the sigmoid lives in the loss). Sizes, activations, pieces, dropout and
init come from params; the convolutional nets of CIFAR-10 are in advnets.gan.conv_nets.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from advnets.params import DatasetModelParams, ModelParams


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


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


def hidden_layers(in_features: int, sizes: list[int], activations: list[str]) -> list[nn.Module]:
    """[Linear, activation] per hidden layer (initialise them afterwards: see Generator)."""
    layers: list[nn.Module] = []
    for size, activation in zip(sizes, activations, strict=True):
        layers += [nn.Linear(in_features, size), ACTIVATIONS[activation]()]
        in_features = size
    return layers


def set_hidden_biases(layers: list[nn.Module], biases: list[float]) -> None:
    """Each hidden Linear's biases to its entry (TFD's sigmoid layers start at -2)."""
    linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
    with torch.no_grad():
        for layer, bias in zip(linears, biases, strict=True):
            layer.bias.fill_(bias)


class Generator(nn.Sequential):
    """Fully connected G: hidden layers, then one linear map to the data and its activation.
    Every weight ~ U(-init_range, init_range), biases 0 (MNIST's output bias is set from the data)."""

    def __init__(
        self,
        noise_dim: int,
        hidden: list[int],
        out_features: int,
        init_range: float,
        activations: list[str] | None = None,
        output: str = "sigmoid",
    ):
        layers = hidden_layers(noise_dim, hidden, activations or ["relu"] * len(hidden))
        layers += [nn.Linear(hidden[-1] if hidden else noise_dim, out_features), ACTIVATIONS[output]()]
        super().__init__(*layers)
        _init_uniform(self, init_range)  # after building all layers: the paper seeds' weights depend on it

    @property
    def output_layer(self) -> nn.Linear:
        return self[-2]

    def set_output_bias_to_data_mean(self, images: torch.Tensor) -> None:
        """Output bias = logit of the per-pixel mean of the training images, clipped as the code
        (in float64: 1 - 1e-7 does not exist in float32)."""
        mean = images.double().mean(dim=0).clamp(1e-7, 1 - 1e-7)
        with torch.no_grad():
            self.output_layer.bias.copy_(torch.logit(mean))

    def init_output_weights(self, init_range: float | None, sparse: int | None = None) -> None:
        """The output layer's weights ~ U(-init_range, init_range), or pylearn2's sparse_init:
        `sparse` non-zero N(0, 1) weights into each output unit, from inputs chosen at random."""
        weight = self.output_layer.weight
        with torch.no_grad():
            if sparse is None:
                weight.uniform_(-init_range, init_range)
            else:
                chosen = torch.rand(weight.shape).argsort(dim=1)[:, :sparse]
                weight.zero_().scatter_(1, chosen, torch.randn(len(weight), sparse))


class StackedGenerator(nn.Sequential):
    """TFD's second stage: a new block maps the noise to the pretrained G's noise space."""

    def __init__(self, block: Generator, pretrained: Generator):
        super().__init__(block, pretrained)


@torch.no_grad()
def cap_column_norms(module: nn.Module, max_norm: float) -> None:
    """pylearn2's max_col_norm: each unit's incoming weight vector (a row of torch's weight) is
    rescaled to norm max_norm if longer; applied after every update."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            layer.weight.renorm_(2, 0, max_norm)


def maxout_layers(in_features: int, units: list[int], pieces: int, keep_first: float, keep_hidden: float) -> list[nn.Module]:
    """D's fully connected part: [dropout, maxout] per layer, then dropout and the output logit.
    nn.Dropout is inverted dropout: keep p scales the kept inputs by 1/p (0.8 -> 1.25)."""
    layers: list[nn.Module] = []
    width, keep = in_features, keep_first
    for size in units:
        layers += [nn.Dropout(1 - keep), Maxout(width, size, pieces)]
        width, keep = size, keep_hidden
    return layers + [nn.Dropout(1 - keep), nn.Linear(width, 1)]


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
        super().__init__(*maxout_layers(in_features, units, pieces, keep_input, keep_hidden))
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


def output_bias_from_data(model: ModelParams) -> bool:
    """Whether G's output bias starts at the logit of the training pixel means (MNIST, TFD stage 1)."""
    return not isinstance(model, DatasetModelParams) or model.g_output_bias == "data_mean"


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
