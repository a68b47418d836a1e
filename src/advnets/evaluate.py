"""The parzen stage: score the samples by the paper's protocol beside calibration baselines, write
the metrics, and add them to the MLflow run of the model that made the samples."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from advnets import tracking
from advnets.atomic import write_csv, write_text
from advnets.data import load_mnist, md5_of
from advnets.device import resolve_device
from advnets.params import Params
from advnets.parzen import PAPER_SOURCE, PAPER_TABLE1_MNIST, ParzenResult, evaluate, log_likelihoods, mean_and_se
from advnets.sampling import draw_samples, load_generator, load_samples
from advnets.selection import validation_split


@dataclass(frozen=True)
class ParzenFiles:
    samples: Path = Path("data/samples.npy")
    run_record: Path = Path("models/mlflow-run.json")
    metrics: Path = Path("metrics/parzen.json")
    sigma_sweep: Path = Path("metrics/parzen_sigmas.csv")


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


def run_parzen(params: Params, data_root: str | Path = "data", files: ParzenFiles = ParzenFiles()) -> dict:
    config = params.parzen
    device = resolve_device(config.device)
    real = load_mnist("train", data_root)[0][: config.baseline_samples]
    selection_images = validation_split(load_mnist("valid", data_root)[0], params)[1]
    samples = load_samples(files.samples)

    start = time.perf_counter()
    gan = score_samples(samples, params, data_root)
    seconds = time.perf_counter() - start
    baseline = score_samples(real, params, data_root)

    metrics = {
        **gan.as_dict(),
        **on_selection_images(samples, gan.sigma, selection_images, params),
        "seconds": seconds,
        "device": str(device),
        "samples_md5": md5_of(files.samples),
        "baselines": {
            "real_training_images": {
                "what": f"the first {len(real)} training images used as the samples, same protocol",
                **baseline.as_dict(),
                **on_selection_images(real, baseline.sigma, selection_images, params),
            },
            "paper_table1": {
                "source": PAPER_SOURCE,
                **{name: {"mean": m, "se": se} for name, (m, se) in PAPER_TABLE1_MNIST.items()},
            },
        },
    }
    write_text(files.metrics, json.dumps(metrics, indent=2) + "\n")
    _write_sweep(files.sigma_sweep, gan.valid_ll_by_sigma, baseline.valid_ll_by_sigma)
    _log_to_training_run(files, params, metrics)
    return metrics


def _write_sweep(path: Path, gan: dict[float, float], real: dict[float, float]) -> None:
    write_csv(path, [{"sigma": s, "valid_ll": gan[s], "valid_ll_real_images": real[s]} for s in gan])


def _log_to_training_run(files: ParzenFiles, params: Params, metrics: dict) -> None:
    real = metrics["baselines"]["real_training_images"]
    scores = {
        "parzen.test_ll_mean": metrics["test_ll_mean"],
        "parzen.test_ll_se": metrics["test_ll_se"],
        "parzen.sigma": metrics["sigma"],
        "parzen.real_images.test_ll_mean": real["test_ll_mean"],
        "parzen.selection_ll_mean": metrics["selection_ll_mean"],
        "parzen.real_images.selection_ll_mean": real["selection_ll_mean"],
    }
    tracking.record_stage(
        "parzen",
        params.flat("sample", "parzen"),  # the score is of those samples: the training run holds them once
        metrics=scores,
        artifacts=[files.metrics, files.sigma_sweep],
        headline=scores,
        run_record=files.run_record,
    )
