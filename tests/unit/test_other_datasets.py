"""The paper's other datasets: their params, nets and training, and each pipeline end to end on
fixtures written by the tests in the real formats (a CIFAR-10 archive, a TFD .mat)."""

import copy
import json

import pytest
import torch
import yaml
from torch import nn

from advnets.gan.build import build_nets
from advnets.gan.nets import StackedGenerator, cap_column_norms, sample_noise
from advnets.gan.sampling import load_generator
from advnets.gan.updates import Nets, simultaneous_step
from advnets.params import ParamsError, validate
from conftest import REPO


def test_defaults_are_the_official_files(raw_params):
    params = validate(raw_params)
    fc, conv, tfd = params.cifar10.fc, params.cifar10.conv, params.tfd
    assert (fc.model.g_hidden, fc.model.g_activations, fc.model.g_output) == ([8000, 8000], ["relu", "sigmoid"], "linear")
    assert (fc.model.g_output_init_range, fc.model.d_units, fc.train.lr, fc.train.batch_size) == (0.5, [1600, 1600], 0.025, 100)
    assert (conv.train.lr, conv.train.batch_size, conv.model.d_units) == (0.004, 128, [500])
    assert [(c.channels, c.kernel, c.pad, c.pool) for c in conv.model.d_conv] == [(32, 8, 4, 4), (32, 8, 3, 4), (192, 5, 3, 2)]
    assert (tfd.pretrain.train.epochs, tfd.train.epochs, tfd.train.lr) == (50, 22, 0.05)
    assert (tfd.pretrain.model.g_hidden_biases, tfd.pretrain.model.g_output_sparse) == ([0.0, -2.0], 100)
    assert tfd.pretrain.model.max_col_norm == tfd.model.max_col_norm == 1.9365
    assert (tfd.model.g_hidden, tfd.model.g_output_bias) == ([8000], -2.0)
    assert params.gan("tfd.pretrain") is tfd.pretrain


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["cifar10"]["fc"]["model"].update(g_activations=["relu"]), "cifar10.fc.model: g_hidden, g_activations"),
        (lambda r: r["cifar10"]["conv"]["model"]["deconv"].update(side=9), "cifar10.conv.model: deconv.channels"),
        (lambda r: r["tfd"]["pretrain"]["model"].update(g_output_init_range=0.05), "tfd.pretrain.model: set exactly one"),
        (lambda r: r["tfd"]["train"].update(lr_typo=1), "tfd.train.lr_typo: unknown key"),
        (lambda r: r["tfd"]["data"].update(fold=5), "tfd.data.fold: input should be less than or equal to 4"),
    ],
)
def test_a_bad_value_names_its_key(raw_params, change, message):
    change(raw_params)
    with pytest.raises(ParamsError, match=message):
        validate(raw_params)


def small(model, **changes):
    return model.model_copy(update={"d_units": [8], "d_pieces": 2, **changes})


def test_cifar10_fc_generator_is_linear_with_its_own_output_init(raw_params):
    model = small(validate(raw_params).cifar10.fc.model, g_hidden=[16, 16])
    torch.manual_seed(0)
    generator, discriminator = build_nets(model, 3072)
    hidden, output = generator[0], generator.output_layer
    assert isinstance(generator[1], nn.ReLU) and isinstance(generator[3], nn.Sigmoid) and isinstance(generator[-1], nn.Identity)
    assert 0.04 < hidden.weight.abs().max() <= 0.05 and 0.45 < output.weight.abs().max() <= 0.5
    out = generator(sample_noise(64, model))
    assert out.shape == (64, 3072) and (out.min() < 0 or out.max() > 1)  # linear: not confined to [0, 1]
    assert discriminator(out).shape == (64,)


def test_tfd_first_stage_init_sparse_output_and_sigmoid_bias(raw_params):
    model = small(validate(raw_params).tfd.pretrain.model, g_hidden=[16, 300])
    torch.manual_seed(0)
    generator, _ = build_nets(model, 2304)
    assert torch.all(generator[2].bias == -2.0) and torch.all(generator[0].bias == 0.0)
    nonzero_per_unit = (generator.output_layer.weight != 0).sum(dim=1)
    assert torch.all(nonzero_per_unit == 100)  # sparse_init: 100 inputs per output unit
    assert generator.output_layer.weight.std() > 0.5  # N(0, 1) weights, not the irange


def test_max_col_norm_caps_each_units_incoming_weights():
    layer = nn.Linear(10, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(40.0).view(4, 10) / 10)
    before = layer.weight.norm(dim=1)
    cap_column_norms(layer, 1.9365)
    after = layer.weight.norm(dim=1)
    assert torch.all(after <= 1.9365 + 1e-5)
    long = before > 1.9365
    assert torch.allclose(after[long], torch.full_like(after[long], 1.9365), atol=1e-5)
    assert torch.equal(after[~long], before[~long])  # shorter rows are untouched


def test_a_tfd_step_keeps_every_norm_capped(raw_params):
    params = validate(raw_params)
    model = small(params.tfd.pretrain.model, g_hidden=[16, 300], max_col_norm=0.05)
    train = params.tfd.pretrain.train.model_copy(update={"lr": 1.0})
    torch.manual_seed(0)
    nets = Nets.create(model, train, 2304)
    simultaneous_step(nets, torch.rand(10, 2304), 0)
    for net in (nets.generator, nets.discriminator):
        for layer in (m for m in net.modules() if isinstance(m, nn.Linear)):
            assert layer.weight.norm(dim=1).max() <= 0.05 + 1e-6


def test_the_conv_step_takes_both_gradients_before_either_net_moves(raw_params):
    """Without dropout, the first step is plain SGD: each net moves by -lr times its gradient at the
    pre-update parameters of both nets, from one D pass."""
    params = validate(raw_params)
    conv = params.cifar10.conv
    model = small(conv.model, g_hidden=[8, 8000], d_keep_input=1.0, d_keep_hidden=1.0,
                  d_conv=[conv.model.d_conv[0].model_copy(update={"channels": 2})])
    torch.manual_seed(0)
    nets = Nets.create(model, conv.train, 3072, (3, 32, 32))
    g0, d0 = copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator)
    x = torch.randn(4, 3072)
    state = torch.get_rng_state()
    simultaneous_step(nets, x, 0)

    torch.set_rng_state(state)
    fakes = g0(sample_noise(4, model))
    logits = d0(torch.cat([x, fakes]))
    real, fake = logits[:4], logits[4:]
    loss_d = 0.5 * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean())
    loss_g = nn.functional.softplus(-fake).mean()
    d_grads = torch.autograd.grad(loss_d, list(d0.parameters()), retain_graph=True)
    g_grads = torch.autograd.grad(loss_g, list(g0.parameters()))
    lr = conv.train.lr
    for net, start, grads in ((nets.discriminator, d0, d_grads), (nets.generator, g0, g_grads)):
        for after, before, grad in zip(net.parameters(), start.parameters(), grads):
            assert torch.allclose(after, before - lr * grad, atol=1e-6)


def test_the_deconv_generator_takes_its_output_keys(raw_params):
    model = validate(raw_params).cifar10.conv.model.model_copy(
        update={"g_hidden": [8, 8000], "g_output_init_range": 0.5, "g_output_bias": 0.25, "g_hidden_biases": [0.0, -1.0]}
    )
    torch.manual_seed(0)
    generator, _ = build_nets(model, 3072, (3, 32, 32))
    assert 0.45 < generator.deconv.weight.abs().max() <= 0.5
    assert torch.all(generator.bias == 0.25) and generator.bias.shape == (3, 32, 32)
    assert torch.all(generator.hidden[2].bias == -1.0)


def test_the_second_tfd_stage_stacks_a_new_block_on_the_first_and_reloads(raw_params, tmp_path):
    params = validate(raw_params)
    first_model = small(params.tfd.pretrain.model, g_hidden=[16, 200])
    torch.manual_seed(0)
    first, _ = build_nets(first_model, 2304)
    block_model = small(params.tfd.model, g_hidden=[12])
    generator, _ = build_nets(block_model, 2304, pretrained=first)
    assert isinstance(generator, StackedGenerator) and generator[1] is first
    assert generator[0].output_layer.out_features == first_model.noise_dim
    assert torch.all(generator[0].output_layer.bias == -2.0)
    z = sample_noise(5, block_model)
    assert torch.equal(generator(z), first(generator[0](z)))

    path = tmp_path / "generator.pt"
    torch.save(generator.state_dict(), path)
    reloaded = load_generator(path, block_model, (1, 48, 48), first_stage=first_model)
    assert torch.equal(reloaded(z), generator.eval()(z))


# ---- the pipelines end to end, on tiny nets ----


def test_the_root_pipeline_is_mnist_only():
    root = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert not any("cifar10" in json.dumps(stage) or "tfd" in json.dumps(stage) for stage in root.values())
