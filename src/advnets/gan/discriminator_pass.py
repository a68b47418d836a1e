"""The discriminator's training pass by hand, for the simultaneous update.

The official step needs, from one dropped-out pass of D over a batch of data and a batch of fakes,
the D loss's gradients for D's weights and the G loss's gradients for the fakes (to go on into G).
Autograd can only get these as two backward passes through D. Here D's forward runs once over data
and fakes together (one GEMM per layer instead of two), and the backward carries both losses'
gradients in one stacked batch: rows [data, fakes] for the D loss, then [fakes] again for the G
loss, which shares the fakes' dropout masks and maxout choices. The maths is autograd's
(tests/unit/test_discriminator_pass.py checks it against autograd); the work is what the step must do.

Maxout's gradient goes to every piece equal to the unit's maximum, as Theano's max did; ties have
probability zero with real-valued inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from advnets.gan.nets import Discriminator


def draw_masks(discriminator: Discriminator, rows: int, device: torch.device) -> list[torch.Tensor]:
    """Inverted dropout masks (0 or 1/keep) for the input of every D layer, from uniform draws
    (several times faster than bernoulli_ on the CPU)."""
    return [
        torch.rand(rows, layer.in_features, device=device).lt_(keep).div_(keep)
        for keep, layer, _ in discriminator.layers()
    ]


@dataclass
class _Saved:
    dropped: torch.Tensor  # the layer's input after dropout
    is_max: torch.Tensor | None  # [rows, units, pieces]: which pieces are their unit's maximum


@torch.no_grad()
def forward(discriminator: Discriminator, inputs: torch.Tensor, masks: list[torch.Tensor]) -> tuple[torch.Tensor, list[_Saved]]:
    """Logits [rows] of D with the given dropout masks, and what the backward needs."""
    saved, h = [], inputs
    for (_, layer, pieces), mask in zip(discriminator.layers(), masks):
        dropped = h * mask
        out = F.linear(dropped, layer.weight, layer.bias)
        is_max = None
        if pieces:
            pre = out.view(len(out), -1, pieces)
            out = pre.amax(dim=-1)
            is_max = pre == out.unsqueeze(-1)
        saved.append(_Saved(dropped, is_max))
        h = out
    return h.squeeze(-1), saved


@torch.no_grad()
def backward(
    discriminator: Discriminator,
    masks: list[torch.Tensor],
    saved: list[_Saved],
    d_grad: torch.Tensor,
    g_grad: torch.Tensor,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients of D's parameters (in .parameters() order) from d_grad, the D loss's gradient
    for all logits [data, fakes], and the gradient for the fakes from g_grad, the G loss's gradient
    for the fakes' logits. The fakes are the last len(g_grad) rows of the forward pass."""
    rows, n_fake = len(d_grad), len(g_grad)
    fakes = slice(rows - n_fake, rows)
    # One stacked batch [rows + n_fake, layer outputs]: the D loss's gradient for data and fakes,
    # then the G loss's for the fakes (whose masks and maxout choices it shares).
    delta = torch.cat([d_grad, g_grad]).unsqueeze(-1)
    param_grads: list[torch.Tensor] = []
    layers = list(discriminator.layers())
    for i in reversed(range(len(layers))):
        _, layer, pieces = layers[i]
        if pieces:  # maxout: the unit's gradient goes to its maximal piece
            is_max = saved[i].is_max
            spread = torch.empty(len(delta), *is_max.shape[1:], device=delta.device)
            torch.mul(is_max, delta[:rows].unsqueeze(-1), out=spread[:rows])
            torch.mul(is_max[fakes], delta[rows:].unsqueeze(-1), out=spread[rows:])
            delta = spread.view(len(delta), -1)
        d_delta = delta[:rows]
        param_grads[:0] = [d_delta.t().mm(saved[i].dropped), d_delta.sum(dim=0)]
        if i == 0:  # D's input: only the G loss's gradient for the fakes is needed
            fake_grad = delta[rows:].mm(layer.weight).mul_(masks[0][fakes])
        else:
            delta = delta.mm(layer.weight)
            delta[:rows].mul_(masks[i])
            delta[rows:].mul_(masks[i][fakes])
    return param_grads, fake_grad
