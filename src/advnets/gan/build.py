"""G and D as the params describe them: the paper's fully connected nets (advnets.gan.nets) or the
convolutional ones of its CIFAR-10 GAN (advnets.gan.conv_nets), which build on them."""

from __future__ import annotations

from torch import nn

from advnets.gan.conv_nets import ConvDiscriminator, DeconvGenerator
from advnets.gan.nets import Discriminator, Generator, StackedGenerator, set_hidden_biases
from advnets.params import DatasetModelParams, ModelParams


def build_generator(model: ModelParams, data_dim: int, image_shape: tuple[int, int, int] | None = None) -> nn.Module:
    """G as the params describe it. MNIST's output bias is set later, from the data
    (Generator.set_output_bias_to_data_mean), as is any model's with g_output_bias data_mean."""
    if not isinstance(model, DatasetModelParams):
        return Generator(model.noise_dim, model.g_hidden, data_dim, model.g_init_range)
    if model.deconv is not None:

        generator = DeconvGenerator(
            model.noise_dim, model.g_hidden, model.g_activations, model.g_init_range, model.deconv, image_shape
        )
        set_hidden_biases(list(generator.hidden), model.g_hidden_biases)
        nn.init.uniform_(generator.deconv.weight, -model.g_output_init_range, model.g_output_init_range)
        nn.init.constant_(generator.bias, model.g_output_bias)
        return generator
    generator = Generator(
        model.noise_dim, model.g_hidden, data_dim, model.g_init_range, model.g_activations, model.g_output
    )
    set_hidden_biases(list(generator)[:-2], model.g_hidden_biases)
    generator.init_output_weights(model.g_output_init_range, model.g_output_sparse)
    if model.g_output_bias != "data_mean":
        nn.init.constant_(generator.output_layer.bias, model.g_output_bias)
    return generator


def build_discriminator(model: ModelParams, data_dim: int, image_shape: tuple[int, int, int] | None = None) -> nn.Module:
    if isinstance(model, DatasetModelParams) and model.d_conv:

        return ConvDiscriminator(
            image_shape, model.d_conv, model.d_units, model.d_pieces, model.d_init_range,
            model.d_keep_input, model.d_keep_hidden,
        )
    return Discriminator(
        data_dim, model.d_units, model.d_pieces, model.d_init_range, model.d_keep_input, model.d_keep_hidden
    )


def build_nets(
    model: ModelParams,
    data_dim: int,
    image_shape: tuple[int, int, int] | None = None,
    pretrained: Generator | None = None,
) -> tuple[nn.Module, nn.Module]:
    """G and D, initialised from the global RNG. With a pretrained G (TFD's second stage), G is a
    new block from the noise to the pretrained G's noise, followed by it."""
    if pretrained is None:
        generator = build_generator(model, data_dim, image_shape)
    else:
        generator = StackedGenerator(build_generator(model, pretrained[0].in_features), pretrained)
    return generator, build_discriminator(model, data_dim, image_shape)
