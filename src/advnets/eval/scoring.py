"""The paper's Parzen-window protocol applied to a generator or its samples: sigma chosen on
validation images, the test images scored."""

from __future__ import annotations

from pathlib import Path

import torch

from advnets.data.mnist import load_mnist
from advnets.device import resolve_device
from advnets.gan.sampling import draw_samples, load_generator
from advnets.params import Params
from advnets.parzen import ParzenResult, evaluate, log_likelihoods, mean_and_se


def score_samples(samples: torch.Tensor, params: Params, data_root: str | Path = "data") -> ParzenResult:
    """The paper's protocol on samples: sigma by the first parzen.valid_points validation images,
    then the test images, on parzen.device."""
    config = params.parzen
    valid = load_mnist("valid", data_root)[0][: config.valid_points]
    test = load_mnist("test", data_root)[0][: config.test_points]
    return evaluate(samples.to(resolve_device(config.device)), valid, test, config.sigmas, config.chunk_size)


def score_generator(generator_path: Path, params: Params, data_root: str | Path = "data") -> ParzenResult:
    """The sample and parzen stages' protocol on a generator file, writing nothing."""
    generator = load_generator(generator_path, params.model)
    return score_samples(draw_samples(generator, params.model, params.sample.n, params.sample.seed), params, data_root)


def on_selection_images(samples: torch.Tensor, sigma: float, points: torch.Tensor, params: Params) -> dict:
    """The samples' mean log-likelihood, at the sigma the protocol chose, of `points`: the validation
    images the checkpoint selection scores. Beside the test figure, how far validation runs above it."""
    device = resolve_device(params.parzen.device)
    values = log_likelihoods(points.to(device), samples.to(device), [sigma], params.parzen.chunk_size)[0]
    mean, se = mean_and_se(values)
    return {"selection_ll_mean": mean, "selection_ll_se": se, "n_selection": len(points)}
