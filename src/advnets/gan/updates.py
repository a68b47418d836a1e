"""The GAN losses and the two update rules (docs/fidelity.md, "How the official code steps").

- simultaneous: what the official code ran. One forward pass per minibatch; both losses from the
  same dropped-out D outputs; both gradients at the pre-update parameters; then both nets step.
- alternating: Algorithm 1 as printed. A D step on fresh data and fresh noise (k of them per G
  step, counted by the caller), and a G step on fresh noise.

Each function returns detached tensors and never synchronises with the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advnets.gan import discriminator_pass
from advnets.gan.build import build_nets
from advnets.gan.nets import Discriminator, Generator, cap_column_norms, sample_noise
from advnets.gan.schedule import ClassicalMomentumSGD
from advnets.params import DatasetModelParams, ModelParams, StepParams


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * (BCE(D(x), 1) + BCE(D(G(z)), 0)); the official code has scale 0.5."""
    return scale * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def g_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """non_saturating: mean -log D(G(z)); minimax: mean log(1 - D(G(z)))."""
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


@dataclass
class Nets:
    generator: nn.Module
    discriminator: nn.Module
    opt_g: ClassicalMomentumSGD
    opt_d: ClassicalMomentumSGD
    model: ModelParams
    train: StepParams

    @classmethod
    def create(
        cls,
        model: ModelParams,
        train: StepParams,
        data_dim: int,
        image_shape: tuple[int, int, int] | None = None,
        pretrained: Generator | None = None,
    ) -> Nets:
        """Freshly initialised nets (from the global RNG) with their optimizers."""
        generator, discriminator = build_nets(model, data_dim, image_shape, pretrained)
        return cls(
            generator,
            discriminator,
            ClassicalMomentumSGD(generator.parameters(), train),
            ClassicalMomentumSGD(discriminator.parameters(), train),
            model,
            train,
        )

    @property
    def norm_cap(self) -> float | None:
        """max_col_norm (TFD's nets), or None."""
        return self.model.max_col_norm if isinstance(self.model, DatasetModelParams) else None

    def cap_norms(self) -> None:
        """The max_col_norm constraint, after every update."""
        if self.norm_cap is not None:
            cap_column_norms(self.generator, self.norm_cap)
            cap_column_norms(self.discriminator, self.norm_cap)


@dataclass
class DStats:
    loss: torch.Tensor
    real: torch.Tensor  # mean D(x)
    fake: torch.Tensor  # mean D(G(z))


def _step(nets: Nets, optimizer: ClassicalMomentumSGD, loss: torch.Tensor, params: list) -> None:
    """One net's step on `loss` at the rate its optimizer has scheduled."""
    optimizer.apply(torch.autograd.grad(loss, params, optimizer.rate))
    nets.cap_norms()


def simultaneous_step(nets: Nets, x: torch.Tensor, completed_epochs: int) -> tuple[DStats, torch.Tensor]:
    """Schedule both optimizers' next step, then `simultaneous_update`."""
    nets.opt_d.schedule(completed_epochs)
    nets.opt_g.schedule(completed_epochs)
    return simultaneous_update(nets, x)


def simultaneous_update(nets: Nets, x: torch.Tensor) -> tuple[DStats, torch.Tensor]:
    """The step's device work at the scheduled rates (what advnets.gan.cuda_graph captures).

    One D pass over data and fakes (independent dropout masks) gives both losses; for the fully
    connected D its backward is done by hand for both at once (advnets.gan.discriminator_pass), else by
    autograd; G's by autograd."""
    if not isinstance(nets.discriminator, Discriminator):
        return _simultaneous_update_autograd(nets, x)
    g_params = list(nets.generator.parameters())
    batch = len(x)
    z = sample_noise(batch, nets.model, x.device)
    fakes = nets.generator(z)
    masks = discriminator_pass.draw_masks(nets.discriminator, 2 * batch, x.device)
    logits, saved = discriminator_pass.forward(nets.discriminator, torch.cat([x, fakes.detach()]), masks)
    logits.requires_grad_()
    real_logits, fake_logits = logits[:batch], logits[batch:]
    loss_d = d_loss(real_logits, fake_logits, nets.train.d_loss_scale)
    loss_g = g_loss(fake_logits, nets.train.g_loss)
    # The gradients of lr_t * loss (see ClassicalMomentumSGD): the scaling rides on the logits.
    (d_logit_grad,) = torch.autograd.grad(loss_d, logits, nets.opt_d.rate)
    (g_logit_grad,) = torch.autograd.grad(loss_g, logits, nets.opt_g.rate)
    d_grads, fake_grad = discriminator_pass.backward(
        nets.discriminator, masks, saved, d_logit_grad, g_logit_grad[batch:]
    )
    g_grads = torch.autograd.grad(fakes, g_params, fake_grad)  # both at the pre-update parameters
    nets.opt_d.apply(d_grads)
    nets.opt_g.apply(g_grads)
    nets.cap_norms()
    stats = DStats(loss_d.detach(), _mean_prob(real_logits), _mean_prob(fake_logits))
    return stats, loss_g.detach()


def _simultaneous_update_autograd(nets: Nets, x: torch.Tensor) -> tuple[DStats, torch.Tensor]:
    """The same step with autograd for any D: both losses from one dropped-out pass, both
    gradients before either net steps."""
    g_params, d_params = list(nets.generator.parameters()), list(nets.discriminator.parameters())
    batch = len(x)
    fakes = nets.generator(sample_noise(batch, nets.model, x.device))
    logits = nets.discriminator(torch.cat([x, fakes]))
    real_logits, fake_logits = logits[:batch], logits[batch:]
    loss_d = d_loss(real_logits, fake_logits, nets.train.d_loss_scale)
    loss_g = g_loss(fake_logits, nets.train.g_loss)
    d_grads = torch.autograd.grad(loss_d, d_params, nets.opt_d.rate, retain_graph=True)
    g_grads = torch.autograd.grad(loss_g, g_params, nets.opt_g.rate)
    nets.opt_d.apply(d_grads)
    nets.opt_g.apply(g_grads)
    nets.cap_norms()
    stats = DStats(loss_d.detach(), _mean_prob(real_logits), _mean_prob(fake_logits))
    return stats, loss_g.detach()


def discriminator_step(nets: Nets, x: torch.Tensor, completed_epochs: int) -> DStats:
    nets.opt_d.schedule(completed_epochs)
    with torch.no_grad():
        fake = nets.generator(sample_noise(len(x), nets.model, x.device))
    real_logits = nets.discriminator(x)
    fake_logits = nets.discriminator(fake)
    loss_d = d_loss(real_logits, fake_logits, nets.train.d_loss_scale)
    _step(nets, nets.opt_d, loss_d, list(nets.discriminator.parameters()))
    return DStats(loss_d.detach(), _mean_prob(real_logits), _mean_prob(fake_logits))


def generator_step(nets: Nets, batch_size: int, device: torch.device, completed_epochs: int) -> torch.Tensor:
    nets.opt_g.schedule(completed_epochs)
    fake_logits = nets.discriminator(nets.generator(sample_noise(batch_size, nets.model, device)))
    loss_g = g_loss(fake_logits, nets.train.g_loss)
    _step(nets, nets.opt_g, loss_g, list(nets.generator.parameters()))
    return loss_g.detach()


def _mean_prob(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits.detach()).mean()
