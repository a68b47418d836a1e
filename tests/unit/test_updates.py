import copy

import pytest
import torch

from advnets.gan.discriminator_pass import draw_masks
from advnets.gan.nets import sample_noise
from advnets.gan.updates import Nets, discriminator_step, g_loss, generator_step, simultaneous_step
from advnets.params import validate
from conftest import TINY, masked_logits, override


def make_nets(params) -> Nets:
    torch.manual_seed(1)
    return Nets.create(params.model, params.train, 784)


def test_simultaneous_step_matches_gradients_by_hand(tiny_params):
    nets = make_nets(tiny_params)
    G, D = copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator)
    x = torch.rand(25, 784)

    torch.manual_seed(7)
    simultaneous_step(nets, x, completed_epochs=0)

    # The same random stream by hand: noise, then D's masks for the data and the fakes together.
    torch.manual_seed(7)
    z = sample_noise(25, tiny_params.model)
    masks = draw_masks(D, 50, torch.device("cpu"))
    real_masks, fake_masks = [m[:25] for m in masks], [m[25:] for m in masks]
    p_real = torch.sigmoid(masked_logits(D, x, real_masks))
    p_fake = torch.sigmoid(masked_logits(D, G(z), fake_masks))
    loss_d = 0.5 * (-torch.log(p_real).mean() - torch.log(1 - p_fake).mean())
    loss_g = -torch.log(p_fake).mean()  # through the same dropped-out pass
    grads_d = torch.autograd.grad(loss_d, list(D.parameters()), retain_graph=True)
    grads_g = torch.autograd.grad(loss_g, list(G.parameters()))

    lr = tiny_params.train.lr  # first step: the momentum buffer is empty
    for net, reference, grads in ((nets.discriminator, D, grads_d), (nets.generator, G, grads_g)):
        for updated, before, grad in zip(net.parameters(), reference.parameters(), grads):
            assert torch.allclose(updated, before - lr * grad, atol=1e-6, rtol=1e-4)


def test_alternating_with_k_2_makes_two_d_updates_per_g_update(raw_params, monkeypatch):
    """The trainer's epoch under train.k = 2: D, D, G, D, D, G; each step moves only its own net."""
    from advnets.gan import trainer as trainer_module

    params = validate(override(raw_params, {**TINY, "train": {**TINY["train"], "update": "alternating", "k": 2}}))
    images = torch.rand(200, 784, generator=torch.Generator().manual_seed(0))
    trainer = trainer_module.Trainer(params, images, images[:50], torch.device("cpu"))
    calls = []

    def only(step, name, moves, keeps):
        def wrapped(nets, *args, **kwargs):
            kept = [p.detach().clone() for p in keeps(nets).parameters()]
            moved = [p.detach().clone() for p in moves(nets).parameters()]
            result = step(nets, *args, **kwargs)
            assert all(torch.equal(a, b) for a, b in zip(kept, keeps(nets).parameters())), f"{name} moved the other net"
            assert not all(torch.equal(a, b) for a, b in zip(moved, moves(nets).parameters())), f"{name} did not step"
            calls.append(name)
            return result

        return wrapped

    monkeypatch.setattr(trainer_module, "discriminator_step",
                        only(discriminator_step, "D", lambda nets: nets.discriminator, lambda nets: nets.generator))
    monkeypatch.setattr(trainer_module, "generator_step",
                        only(generator_step, "G", lambda nets: nets.generator, lambda nets: nets.discriminator))
    trainer.train_epoch()
    assert calls == ["D", "D", "G", "D", "D", "G"]
    assert (trainer.nets.opt_d.steps_done, trainer.nets.opt_g.steps_done) == (4, 2)


def test_alternating_steps_descend_their_own_loss_at_the_scheduled_rate(tiny_params):
    nets = make_nets(tiny_params)
    G, D = copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator)
    x = torch.rand(25, 784)
    lr = tiny_params.train.lr  # first step of each net: the momentum buffer is empty

    torch.manual_seed(7)
    discriminator_step(nets, x, completed_epochs=0)
    torch.manual_seed(7)  # the same stream by hand: noise, then the dropout masks of D(x), D(G(z))
    fake = G(sample_noise(25, tiny_params.model)).detach()
    loss_d = 0.5 * (-torch.log(torch.sigmoid(D(x))).mean() - torch.log(1 - torch.sigmoid(D(fake))).mean())
    grads_d = torch.autograd.grad(loss_d, list(D.parameters()))
    for updated, before, grad in zip(nets.discriminator.parameters(), D.parameters(), grads_d):
        assert torch.allclose(updated, before - lr * grad, atol=1e-6, rtol=1e-4)

    D = copy.deepcopy(nets.discriminator)
    torch.manual_seed(8)
    generator_step(nets, 25, torch.device("cpu"), completed_epochs=0)
    torch.manual_seed(8)
    loss_g = -torch.log(torch.sigmoid(D(G(sample_noise(25, tiny_params.model))))).mean()
    grads_g = torch.autograd.grad(loss_g, list(G.parameters()))
    for updated, before, grad in zip(nets.generator.parameters(), G.parameters(), grads_g):
        assert torch.allclose(updated, before - lr * grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("logit", [-3.0, 0.0, 2.0])
def test_generator_losses(logit):
    logits = torch.full((4,), logit)
    p = torch.sigmoid(torch.tensor(logit))
    assert g_loss(logits, "non_saturating").item() == pytest.approx(-torch.log(p).item(), rel=1e-5)
    assert g_loss(logits, "minimax").item() == pytest.approx(torch.log(1 - p).item(), rel=1e-5)


def test_both_generator_losses_push_d_of_fakes_up():
    logits = torch.tensor([-1.0, 0.5], requires_grad=True)
    for kind in ("non_saturating", "minimax"):
        (grad,) = torch.autograd.grad(g_loss(logits, kind), logits)
        assert (grad < 0).all()  # descending the loss raises D(G(z))
