import pytest
import torch

from advnets.gan import discriminator_pass
from advnets.gan.build import build_nets
from conftest import masked_logits

CPU = torch.device("cpu")


@pytest.fixture
def discriminator(raw_params):
    """The paper's D (784 -> maxout 240x5 -> maxout 240x5 -> 1), with weights large enough that
    its logits and gradients are far from zero."""
    from advnets.params import validate

    torch.manual_seed(3)
    _, D = build_nets(validate(raw_params).model, 784)
    with torch.no_grad():
        for p in D.parameters():
            p.uniform_(-0.1, 0.1)
    return D


def test_masks_are_inverted_dropout_with_the_keep_probabilities(discriminator):
    masks = discriminator_pass.draw_masks(discriminator, 500, CPU)
    assert [m.shape for m in masks] == [(500, 784), (500, 240), (500, 240)]
    for mask, keep in zip(masks, (0.8, 0.5, 0.5)):
        assert mask.unique().tolist() == pytest.approx([0.0, 1 / keep])
        assert (mask > 0).float().mean().item() == pytest.approx(keep, abs=0.01)


def test_forward_and_both_backwards_match_autograd(discriminator):
    torch.manual_seed(0)
    n_real, n_fake = 30, 20
    x = torch.rand(n_real + n_fake, 784)
    masks = discriminator_pass.draw_masks(discriminator, n_real + n_fake, CPU)
    d_grad, g_grad = torch.randn(n_real + n_fake), torch.randn(n_fake)

    logits, saved = discriminator_pass.forward(discriminator, x, masks)
    param_grads, fake_grad = discriminator_pass.backward(discriminator, masks, saved, d_grad, g_grad)

    params = list(discriminator.parameters())
    inputs = x.clone().requires_grad_()
    reference = masked_logits(discriminator, inputs, masks)
    assert torch.allclose(logits, reference, atol=1e-6)
    expected_params = torch.autograd.grad(reference, params, d_grad, retain_graph=True)
    (expected_inputs,) = torch.autograd.grad(reference[n_real:], inputs, g_grad)
    assert len(param_grads) == len(params)
    for got, expected in zip(param_grads, expected_params):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    assert fake_grad.abs().max() > 0
    assert torch.allclose(fake_grad, expected_inputs[n_real:], atol=1e-6, rtol=1e-4)
    assert (expected_inputs[:n_real] == 0).all()  # the G loss reaches only the fakes
