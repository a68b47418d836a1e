"""The parzen stage: score the samples by the paper's protocol beside calibration baselines, write
the metrics, and add them to the MLflow run of the model that made the samples."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from advnets.atomic import md5_of, write_csv, write_text
from advnets.data.mnist import load_mnist
from advnets.device import resolve_device
from advnets.eval.scoring import on_selection_images, score_samples
from advnets.eval.selection import validation_split
from advnets.gan.sampling import load_samples
from advnets.params import Params
from advnets.parzen import PAPER_SOURCE, PAPER_TABLE1_MNIST
from advnets.provenance import tracking


@dataclass(frozen=True)
class ParzenFiles:
    samples: Path = Path("data/samples.npy")
    run_record: Path = Path("models/mlflow-run.json")
    metrics: Path = Path("metrics/parzen.json")
    sigma_sweep: Path = Path("metrics/parzen_sigmas.csv")


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
