"""The official code's optimizer schedules: per-step learning-rate decay, per-epoch momentum ramp."""

from __future__ import annotations

import torch

from advnets.params import TrainParams


def learning_rate(train: TrainParams, step: int) -> float:
    """The rate for step `step` (0-based): lr / decay^step, floored at lr_min."""
    try:
        decayed = train.lr / train.lr_decay**step
    except OverflowError:  # decay^step beyond float range: long past the floor
        decayed = 0.0
    return max(decayed, train.lr_min)


def momentum(train: TrainParams, completed_epochs: int) -> float:
    """mu = start + (end - start) * min(e / ramp_epochs, 1) after e completed epochs."""
    ramp = min(completed_epochs / train.momentum_ramp_epochs, 1.0)
    return train.momentum_start + (train.momentum_end - train.momentum_start) * ramp


class ClassicalMomentumSGD(torch.optim.SGD):
    """pylearn2's classical momentum, inc = mu * inc - lr_t * g; w += inc, on torch's SGD.

    torch.optim.SGD keeps v = m * v + g and steps w -= lr_t * v, i.e. inc_t = m * lr_t / lr_{t-1}
    * inc_{t-1} - lr_t * g. Setting m = mu * lr_{t-1} / lr_t makes the two identical while the
    learning rate decays every step.
    """

    def __init__(self, params, train: TrainParams):
        # fused: one kernel per parameter for the whole update (CPU and CUDA).
        super().__init__(params, lr=train.lr, momentum=train.momentum_start, fused=True)
        self.train_params = train
        self.steps_done = 0

    def step_with_schedule(self, completed_epochs: int) -> None:
        lr_now = learning_rate(self.train_params, self.steps_done)
        lr_prev = learning_rate(self.train_params, self.steps_done - 1) if self.steps_done else lr_now
        mu = momentum(self.train_params, completed_epochs)
        for group in self.param_groups:
            group["lr"] = lr_now
            group["momentum"] = mu * lr_prev / lr_now
        self.step()
        self.steps_done += 1

    def state_dict(self):
        state = super().state_dict()
        state["steps_done"] = self.steps_done
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.steps_done = state_dict.pop("steps_done")
        super().load_state_dict(state_dict)
