import math

import pytest
import torch
from torch import nn

from advnets.gan.build import build_nets
from advnets.gan.nets import Maxout, sample_noise
from advnets.params import validate


def test_maxout_is_the_max_over_contiguous_groups():
    torch.manual_seed(0)
    layer = Maxout(7, units=4, pieces=3)
    x = torch.randn(5, 7)
    linear = x @ layer.linear.weight.T + layer.linear.bias
    expected = torch.stack([linear[:, 3 * j : 3 * j + 3].max(dim=1).values for j in range(4)], dim=1)
    assert torch.allclose(layer(x), expected)


def test_paper_parameter_counts(raw_params):
    generator, discriminator = build_nets(validate(raw_params).model, 784)
    assert sum(p.numel() for p in generator.parameters()) == 2_503_984
    assert sum(p.numel() for p in discriminator.parameters()) == 1_231_441


def test_init_ranges_and_zero_biases(raw_params):
    model = validate(raw_params).model
    generator, discriminator = build_nets(model, 784)
    for net, bound in ((generator, model.g_init_range), (discriminator, model.d_init_range)):
        for layer in (m for m in net.modules() if isinstance(m, nn.Linear)):
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.9 * bound  # uniform over the whole range
            assert torch.count_nonzero(layer.bias) == 0


def test_output_bias_is_logit_of_clipped_pixel_means(raw_params):
    generator, _ = build_nets(validate(raw_params).model, 784)
    images = torch.zeros(4, 784)
    images[:, 1] = 1.0
    images[:2, 2] = 1.0
    generator.set_output_bias_to_data_mean(images)
    bias = generator.output_layer.bias
    assert bias[0].item() == pytest.approx(math.log(1e-7 / (1 - 1e-7)), rel=1e-4)
    assert bias[1].item() == pytest.approx(math.log((1 - 1e-7) / 1e-7), rel=1e-4)
    assert bias[2].item() == pytest.approx(0.0, abs=1e-6)


def test_discriminator_dropout_keeps_and_scales_as_the_paper(raw_params):
    _, discriminator = build_nets(validate(raw_params).model, 784)
    dropouts = [m for m in discriminator.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3  # into every D layer
    torch.manual_seed(0)
    for dropout, keep in zip(dropouts, (0.8, 0.5, 0.5)):
        out = dropout.train()(torch.ones(200, 1000))
        assert set(out.unique().tolist()) == {0.0, 1 / keep}
        assert (out > 0).float().mean().item() == pytest.approx(keep, abs=0.01)
        assert torch.equal(dropout.eval()(torch.ones(3, 5)), torch.ones(3, 5))


def test_discriminator_in_eval_is_deterministic_and_gives_one_logit(raw_params):
    _, discriminator = build_nets(validate(raw_params).model, 784)
    x = torch.rand(6, 784)
    discriminator.eval()
    assert discriminator(x).shape == (6,)
    assert torch.equal(discriminator(x), discriminator(x))


def test_generator_outputs_pixels_in_unit_interval(raw_params):
    model = validate(raw_params).model
    generator, _ = build_nets(model, 784)
    out = generator(sample_noise(8, model))
    assert out.shape == (8, 784) and 0 <= out.min() and out.max() <= 1


def test_noise_priors(raw_params):
    model = validate(raw_params).model
    z = sample_noise(100_000, model, generator=torch.Generator().manual_seed(0))
    assert z.shape == (100_000, 100)
    assert z.abs().max() <= math.sqrt(3)
    assert z.var().item() == pytest.approx(1.0, abs=0.01)
    raw_params["model"]["noise"] = "gaussian"
    gaussian = sample_noise(100_000, validate(raw_params).model, generator=torch.Generator().manual_seed(0))
    assert gaussian.abs().max() > math.sqrt(3) and gaussian.var().item() == pytest.approx(1.0, abs=0.01)
