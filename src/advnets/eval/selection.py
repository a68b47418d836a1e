"""Checkpoint selection on validation data only.

The paper gives no stopping rule and does not say which checkpoint Table 1 scored. We score the
generator every `select.every` epochs by the Parzen protocol on validation images alone: sigma is
chosen on the first `parzen.valid_points` validation images (as the evaluation does), and the score
is the mean log-likelihood of the next `select.valid_points` images, never the ones that chose
sigma and never the test set. The best-scoring epoch's nets are the training's result.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from advnets.gan.nets import Generator, sample_noise
from advnets.params import Params
from advnets.parzen import evaluate


def validation_split(valid_images: torch.Tensor, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """(the validation images that choose sigma, the ones the selection scores), apart."""
    n_sigma = params.parzen.valid_points
    return valid_images[:n_sigma], valid_images[n_sigma : n_sigma + params.select.valid_points]


class Selector:
    def __init__(self, params: Params, valid_images: torch.Tensor, device: torch.device):
        self.every, self.last_epoch = params.select.every, params.train.epochs
        self.sigmas = params.parzen.sigmas
        sigma_points, score_points = validation_split(valid_images, params)
        self.sigma_points, self.score_points = sigma_points.to(device), score_points.to(device)
        # Fixed noise from its own stream (seeded apart from the monitor's), drawn once, so every
        # scored epoch is judged on the same z and training's random stream is never touched.
        fixed = torch.Generator().manual_seed(params.train.seed + 1_000_003)
        self.z = sample_noise(params.select.samples, params.model, generator=fixed).to(device)
        self.best: dict[str, Any] | None = None  # epoch, valid_ll, sigma, generator, discriminator

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0 or epoch == self.last_epoch

    @torch.no_grad()
    def score(self, generator: Generator) -> dict[str, float]:
        """The validation score of a generator: {"valid_ll": mean, "valid_ll_se": se, "sigma": sigma}."""
        was_training = generator.training
        generator.eval()
        samples = torch.cat([generator(z) for z in self.z.split(1000)])
        generator.train(was_training)
        result = evaluate(samples, self.sigma_points, self.score_points, self.sigmas)
        return {"valid_ll": result.test_ll_mean, "valid_ll_se": result.test_ll_se, "sigma": result.sigma}

    def consider(self, epoch: int, score: dict[str, float], nets: dict[str, torch.nn.Module]) -> bool:
        """Keep a CPU copy of the nets if this epoch scores best so far; True if it does."""
        if self.best is not None and score["valid_ll"] <= self.best["valid_ll"]:
            return False
        self.best = {
            "epoch": epoch,
            **score,
            **{name: copy.deepcopy({k: v.cpu() for k, v in net.state_dict().items()}) for name, net in nets.items()},
        }
        return True

    def summary(self) -> dict[str, float]:
        """The selected epoch and its score, for the metrics."""
        assert self.best is not None, "no epoch scored yet"
        return summary(self.best)

    def state_dict(self) -> dict[str, Any] | None:
        return self.best

    def load_state_dict(self, best: dict[str, Any] | None) -> None:
        self.best = best


def summary(best: dict[str, Any]) -> dict[str, float]:
    """The metrics of a selected epoch: {epoch, valid_ll, valid_ll_se, sigma} as `score` gives them."""
    return {
        "selected_epoch": best["epoch"],
        "selected_valid_ll": best["valid_ll"],
        "selected_valid_ll_se": best["valid_ll_se"],
        "selected_sigma": best["sigma"],
    }
