from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advnets.gan.conv_nets import ConvDiscriminator, ConvMaxout, DeconvGenerator
from advnets.gan.nets import Maxout

IMAGE = (3, 32, 32)
PAPER_CONV = [  # cifar10_convolutional.yaml's D
    SimpleNamespace(channels=32, pieces=2, kernel=8, pad=4, pool=4, pool_stride=2),
    SimpleNamespace(channels=32, pieces=2, kernel=8, pad=3, pool=4, pool_stride=2),
    SimpleNamespace(channels=192, pieces=2, kernel=5, pad=3, pool=2, pool_stride=2),
]
PAPER_DECONV = SimpleNamespace(channels=80, side=10, kernel=5, stride=3)


def paper_discriminator(image_shape=IMAGE) -> ConvDiscriminator:
    return ConvDiscriminator(image_shape, PAPER_CONV, [500], 5, 0.005, keep_input=0.8, keep_hidden=0.5)


def small_generator(hidden=(8, 8000), deconv=PAPER_DECONV) -> DeconvGenerator:
    """The paper's deconvolution geometry behind a cheap first hidden layer (8 instead of 8000)."""
    return DeconvGenerator(100, list(hidden), ["relu", "sigmoid"], 0.05, deconv, IMAGE)


def test_conv_maxout_is_the_max_over_contiguous_maps_then_pooling():
    torch.manual_seed(0)
    layer = ConvMaxout(3, channels=4, pieces=3, kernel=3, pad=1, pool=2, pool_stride=2)
    nn.init.normal_(layer.conv.bias)
    x = torch.randn(2, 3, 6, 6)
    z = F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)
    contiguous = torch.stack([z[:, 3 * j : 3 * j + 3].amax(dim=1) for j in range(4)], dim=1)
    assert torch.allclose(layer(x), F.max_pool2d(contiguous, 2, 2))
    strided = torch.stack([z[:, j::4].amax(dim=1) for j in range(4)], dim=1)
    assert not torch.allclose(layer(x), F.max_pool2d(strided, 2, 2))


def test_pooling_rounds_up_as_cuda_convnet_with_the_last_window_clipped():
    layer = ConvMaxout(1, channels=1, pieces=1, kernel=1, pad=0, pool=4, pool_stride=2)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.zero_()
    x = torch.randn(1, 1, 33, 33)
    out = layer(x)
    assert out.shape == (1, 1, 16, 16) and layer.output_side(33) == 16  # ceil(29 / 2) + 1, floor gives 15
    assert out[0, 0, -1, -1] == x[0, 0, 30:, 30:].max()  # the last window covers rows 30-32 only


def test_paper_discriminator_spatial_sizes_and_logits():
    torch.manual_seed(0)
    discriminator = paper_discriminator().eval()
    assert discriminator.feature_shapes == [(32, 16, 16), (32, 7, 7), (192, 5, 5)]
    seen = []
    for module in discriminator:
        if isinstance(module, ConvMaxout):
            module.register_forward_hook(lambda _module, _input, out: seen.append(tuple(out.shape[1:])))
    logits = discriminator(torch.randn(2, 3 * 32 * 32))
    assert logits.shape == (2,)
    assert seen == discriminator.feature_shapes
    maxout = next(m for m in discriminator if isinstance(m, Maxout))
    assert maxout.linear.in_features == 192 * 5 * 5 and maxout.linear.out_features == 500 * 5
    conv_params = (3 * 64 * 64 + 64) + (32 * 64 * 64 + 64) + (32 * 384 * 25 + 384)
    assert sum(p.numel() for p in discriminator.parameters()) == conv_params + (4800 * 2500 + 2500) + 501


def test_discriminator_dropout_on_every_layer_input_in_train_mode_only():
    torch.manual_seed(0)
    discriminator = paper_discriminator()
    assert [m.p for m in discriminator if isinstance(m, nn.Dropout)] == pytest.approx([0.2, 0.5, 0.5, 0.5, 0.5])
    x = torch.randn(2, 3072)
    with torch.no_grad():
        assert not torch.equal(discriminator.train()(x), discriminator(x))
        assert torch.equal(discriminator.eval()(x), discriminator(x))


def test_discriminator_init_ranges_and_zero_biases():
    torch.manual_seed(0)
    layers = [m for m in paper_discriminator().modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 5
    for layer in layers:
        assert 0.9 * 0.005 < layer.weight.abs().max() <= 0.005
        assert torch.count_nonzero(layer.bias) == 0


def test_discriminator_rejects_an_image_too_small_for_its_layers():
    # 8 -> conv 9 -> pool 4, then conv 4 + 6 - 8 + 1 = 3 < pool 4
    with pytest.raises(ValueError, match="conv layer 1: input side 4 gives a detector side of 3"):
        paper_discriminator((3, 8, 8))
    with pytest.raises(ValueError, match="pool_stride 3 > pool 2"):
        ConvMaxout(3, channels=4, pieces=2, kernel=3, pad=0, pool=2, pool_stride=3)


def test_generator_output_is_the_transposed_convolution_plus_a_per_pixel_bias():
    torch.manual_seed(0)
    generator = small_generator()
    assert generator.deconv.weight.shape == (80, 3, 5, 5) and generator.deconv.bias is None
    assert generator.bias.shape == IMAGE
    with torch.no_grad():
        generator.bias.normal_()
    z = torch.randn(4, 100)
    out = generator(z)
    assert out.shape == (4, 3072)
    maps = generator.hidden(z).view(4, 80, 10, 10)
    expected = F.conv_transpose2d(maps, generator.deconv.weight, stride=3) + generator.bias
    assert torch.allclose(out, expected.flatten(1), atol=1e-6)
    assert out.min() < 0 and out.max() > 1  # linear output


def test_transposed_convolution_geometry():
    torch.manual_seed(0)
    generator = small_generator()
    maps = torch.zeros(1, 80, 10, 10)
    maps[0, 0, 2, 3] = 1.0  # map pixel (i, j) reaches output rows 3i..3i+4, columns 3j..3j+4
    with torch.no_grad():
        out = generator.deconv(maps)
    assert out.shape == (1, 3, 32, 32)
    rows, cols = out[0].abs().sum(dim=0).nonzero().unbind(dim=1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 10, 9, 13)


def test_generator_init_ranges_zero_biases_and_seeded_weights():
    torch.manual_seed(0)
    generator = small_generator()
    for layer in [*(m for m in generator.hidden if isinstance(m, nn.Linear)), generator.deconv]:
        assert 0.9 * 0.05 < layer.weight.abs().max() <= 0.05
        assert layer.bias is None or torch.count_nonzero(layer.bias) == 0
    assert torch.count_nonzero(generator.bias) == 0
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(generator.parameters(), small_generator().parameters()))


def test_generator_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r"80 \* 10\^2 = 8000, got hidden \[8, 7999\]"):
        small_generator(hidden=(8, 7999))
    with pytest.raises(ValueError, match="gives 23 x 23"):
        small_generator(deconv=SimpleNamespace(channels=80, side=10, kernel=5, stride=2))


def test_gradients_reach_every_parameter_of_both_nets():
    torch.manual_seed(0)
    generator, discriminator = small_generator(), paper_discriminator()
    discriminator(generator(torch.randn(3, 100))).sum().backward()
    for name, parameter in [*generator.named_parameters(), *discriminator.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
