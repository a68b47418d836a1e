"""The convolutional CIFAR-10 nets (docs/fidelity.md, "Other datasets"; cifar10_convolutional.yaml):
Figure 2 d's convolutional D and "deconvolutional" G. Both take and return flat images
([B, 3072] in (channel, row, col) order, as everywhere in the project).

D's spatial sizes for a 3 x 32 x 32 input (derived, not in the paper): a convolution of stride 1
gives side + 2 pad - kernel + 1, and pylearn2's MaxoutConvC01B pools with cuda-convnet's
max_pool_c01b, whose pooled side is ceil((side - pool) / stride) + 1 (pylearn2
sandbox/cuda_convnet/pool.py: the last window is clipped at the border). That is
torch's MaxPool2d(ceil_mode=True) for stride <= pool (cuda-convnet requires it); floor, torch's
default, would give 15, 6, 4 and 192 x 4 x 4 = 3072 features instead.

    conv1: 32 + 2*4 - 8 + 1 = 33, pool 4/2 -> ceil(29 / 2) + 1 = 16   (32 maps)
    conv2: 16 + 2*3 - 8 + 1 = 15, pool 4/2 -> ceil(11 / 2) + 1 = 7    (32 maps)
    conv3:  7 + 2*3 - 5 + 1 =  9, pool 2/2 -> ceil(7 / 2) + 1  = 5    (192 maps)
    flatten 192 x 5 x 5 = 4800 -> maxout 500 x 5 -> 1 logit

G: 80 x 10 x 10 -> transposed convolution kernel 5 stride 3 -> (10 - 1) * 3 + 5 = 32.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advnets.gan.nets import hidden_layers, maxout_layers


def _init_uniform(module: nn.Module, init_range: float) -> None:
    """Every Linear, Conv2d and ConvTranspose2d weight ~ U(-init_range, init_range), in module
    order (a seed's weights are fixed by construction order), every such bias 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(layer.weight, -init_range, init_range)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class ConvMaxout(nn.Module):
    """Convolution to channels * pieces maps (one bias per map: tied_b), max over `pieces`
    *contiguous* maps (pylearn2 takes z[i::pieces] for piece i, so unit j's maps are
    j * pieces ... j * pieces + pieces - 1), then max pooling with cuda-convnet's ceil rounding."""

    def __init__(
        self, in_channels: int, channels: int, pieces: int, kernel: int, pad: int, pool: int, pool_stride: int
    ):
        super().__init__()
        if pool_stride > pool:
            raise ValueError(f"pool_stride {pool_stride} > pool {pool} (cuda-convnet does not allow it)")
        self.channels, self.pieces = channels, pieces
        self.kernel, self.pad, self.pool_size, self.pool_stride = kernel, pad, pool, pool_stride
        self.conv = nn.Conv2d(in_channels, channels * pieces, kernel, padding=pad)
        self.pool = nn.MaxPool2d(pool, pool_stride, ceil_mode=True)

    def detector_side(self, side: int) -> int:
        return side + 2 * self.pad - self.kernel + 1

    def output_side(self, side: int) -> int:
        return math.ceil((self.detector_side(side) - self.pool_size) / self.pool_stride) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        batch, _, height, width = z.shape
        z = z.view(batch, self.channels, self.pieces, height, width).amax(dim=2)
        return self.pool(z)


class ConvDiscriminator(nn.Sequential):
    """Convolutional maxout layers, fully connected maxout layers, one logit. Dropout (elementwise,
    as pylearn2 masks every value) on the input of every layer: keep_input into the first,
    keep_hidden into the rest."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        conv_layers: list,
        units: list[int],
        pieces: int,
        init_range: float,
        keep_input: float,
        keep_hidden: float,
    ):
        channels, height, width = image_shape
        layers: list[nn.Module] = [nn.Unflatten(1, image_shape)]
        keep = keep_input
        feature_shapes = []  # (channels, height, width) after each conv layer
        for index, spec in enumerate(conv_layers):
            layer = ConvMaxout(channels, spec.channels, spec.pieces, spec.kernel, spec.pad, spec.pool, spec.pool_stride)
            for side in (height, width):
                if layer.detector_side(side) < spec.pool:
                    raise ValueError(
                        f"conv layer {index}: input side {side} gives a detector side of "
                        f"{layer.detector_side(side)}, smaller than its pool {spec.pool}"
                    )
            channels, height, width = spec.channels, layer.output_side(height), layer.output_side(width)
            feature_shapes.append((channels, height, width))
            layers += [nn.Dropout(1 - keep), layer]
            keep = keep_hidden
        # torch flattens (channel, row, col), pylearn2 (row, col, channel): a fixed permutation of
        # the next layer's inputs, whose weights are i.i.d., so the same model.
        layers.append(nn.Flatten())
        layers += maxout_layers(channels * height * width, units, pieces, keep, keep_hidden)
        super().__init__(*layers)
        _init_uniform(self, init_range)
        self.feature_shapes: list[tuple[int, int, int]] = feature_shapes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Flat images [B, C*H*W] -> logits [B]."""
        return super().forward(x).squeeze(-1)


class DeconvGenerator(nn.Module):
    """Hidden layers, the last one seen as channels x side x side maps, then a transposed
    convolution to the image plus an untied bias (one per channel and pixel: tied_b 0), linear
    output (CIFAR-10's images are contrast-normalised, not in [0, 1])."""

    def __init__(
        self,
        noise_dim: int,
        hidden: list[int],
        activations: list[str],
        init_range: float,
        deconv,
        out_shape: tuple[int, int, int],
    ):
        super().__init__()
        maps = deconv.channels * deconv.side**2
        if not hidden or hidden[-1] != maps:
            raise ValueError(
                f"the last hidden size must be deconv.channels * deconv.side^2 = "
                f"{deconv.channels} * {deconv.side}^2 = {maps}, got hidden {hidden}"
            )
        side_out = (deconv.side - 1) * deconv.stride + deconv.kernel
        if (side_out, side_out) != tuple(out_shape[1:]):
            raise ValueError(
                f"the transposed convolution gives {side_out} x {side_out} = (side {deconv.side} - 1) * "
                f"stride {deconv.stride} + kernel {deconv.kernel}, not the image's {out_shape[1]} x {out_shape[2]}"
            )
        self.map_shape = (deconv.channels, deconv.side, deconv.side)
        self.hidden = nn.Sequential(*hidden_layers(noise_dim, hidden, activations))
        self.deconv = nn.ConvTranspose2d(deconv.channels, out_shape[0], deconv.kernel, stride=deconv.stride, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_shape))
        _init_uniform(self, init_range)  # after building all layers, as nets.Generator

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Noise [B, noise_dim] -> flat images [B, C*H*W]."""
        maps = self.hidden(z).view(-1, *self.map_shape)
        return (self.deconv(maps) + self.bias).flatten(1)
