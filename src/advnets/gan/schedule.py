"""The official code's optimizer schedules: per-step learning-rate decay, per-epoch momentum ramp."""

from __future__ import annotations

import math

import torch

from advnets.errors import AdvnetsError
from advnets.params import StepParams


class OptimizerStateError(AdvnetsError, ValueError):
    """A saved optimizer state this code cannot continue."""


def learning_rate(train: StepParams, step: int) -> float:
    """The rate for step `step` (0-based): lr / decay^step, floored at lr_min."""
    try:
        decayed = train.lr / train.lr_decay**step
    except OverflowError:  # decay^step beyond float range: long past the floor
        decayed = 0.0
    return max(decayed, train.lr_min)


def learning_rate_spent(train: StepParams, steps: int) -> float:
    """The share of the decaying rate's sum over all steps, sum_t lr / decay^t, that its first
    `steps` steps take: 1 - decay^-steps (0 without decay). The floor is left out: at the paper's
    1e-6 it adds 1e-5 of the first step's rate per step, long after the sum has converged."""
    if train.lr_decay == 1:
        return 0.0
    return -math.expm1(-steps * math.log(train.lr_decay))


def momentum(train: StepParams, completed_epochs: int) -> float:
    """mu = start + (end - start) * min(e / ramp_epochs, 1) after e completed epochs."""
    ramp = min(completed_epochs / train.momentum_ramp_epochs, 1.0)
    return train.momentum_start + (train.momentum_end - train.momentum_start) * ramp


class ClassicalMomentumSGD(torch.optim.SGD):
    """pylearn2's classical momentum, inc = mu * inc - lr_t * g; w += inc, on torch's fused SGD.

    torch's SGD with lr 1 keeps v = m * v + g' and steps w -= v. Fed g' = lr_t * g and m = mu, its
    v is exactly -inc. A step is split in two: `schedule` (host: lr_t into a device tensor, `rate`,
    mu into the param group, the step counted) and `apply` (device work only, with no per-step
    constant, so a CUDA graph can capture it; mu is a constant of the kernel and changes once per
    epoch). `apply` takes the gradients of lr_t * loss: backpropagating from `rate` instead of 1
    (torch.autograd.grad(loss, params, optimizer.rate)) scales them at the loss, a single number,
    instead of in a pass over every gradient.
    """

    STATE_FORM = "lr-scaled"  # the momentum buffers hold lr-scaled increments (-inc)

    def __init__(self, params, train: StepParams):
        super().__init__(params, lr=1.0, momentum=train.momentum_start, fused=True)
        self.train_params = train
        self.steps_done = 0
        self.rate: torch.Tensor | None = None  # lr_t, on the parameters' device, in their dtype

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def schedule(self, completed_epochs: int) -> None:
        """Set lr_t and mu for the next step and count it."""
        first = self._params()[0]
        if self.rate is None or self.rate.device != first.device:  # the nets moved to a device
            self.rate = torch.empty((), dtype=first.dtype, device=first.device)
        self.rate.fill_(learning_rate(self.train_params, self.steps_done))
        mu = momentum(self.train_params, completed_epochs)
        for group in self.param_groups:
            group["momentum"] = mu
        self.steps_done += 1

    def apply(self, scaled_grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        """Step with the gradients of lr_t * loss (one per parameter, in order) at the scheduled
        mu."""
        for param, grad in zip(self._params(), scaled_grads, strict=True):
            param.grad = grad
        self.step()

    def step_with_schedule(self, completed_epochs: int) -> None:
        """schedule, then apply the gradients of the loss in .grad (scaled by lr_t in place)."""
        self.schedule(completed_epochs)
        grads = [p.grad for p in self._params()]
        torch._foreach_mul_(grads, self.rate)
        self.apply(grads)

    def state_dict(self):
        state = super().state_dict()
        state["steps_done"] = self.steps_done
        state["form"] = self.STATE_FORM
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        if state_dict.pop("form", None) != self.STATE_FORM:
            raise OptimizerStateError(
                "optimizer state from an earlier advnets (momentum buffers not lr-scaled): it cannot "
                "resume here; remove the checkpoint (models/checkpoint.pt) and train again"
            )
        self.steps_done = state_dict.pop("steps_done")
        super().load_state_dict(state_dict)
