"""The stages after training for the paper's other datasets (pipelines/<dataset>/dvc.yaml):
samples, Figure 2's panel, and for TFD the Parzen figure per fold. Each records itself on the
GAN's training run in MLflow, as MNIST's stages do."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from advnets.atomic import write_text
from advnets.data.registry import GANS
from advnets.gan.sampling import draw_samples, load_generator, load_samples, save_samples
from advnets.params import Params, changes_results
from advnets.pipeline import paths
from advnets.pipeline.paths import slug
from advnets.provenance import tracking


def trained_generator(params: Params, gan: str) -> torch.nn.Module:
    """The GAN's trained G (TFD's stacked on its first stage's)."""
    first_stage = params.tfd.pretrain.model if gan == "tfd" else None
    path = paths.models_dir(gan) / "generator.pt"
    return load_generator(path, params.gan(gan).model, GANS[gan].image_shape, first_stage)


def _record(params: Params, gan: str, kind: str, read: dict, **logged) -> None:
    tracking.record_stage(
        paths.stage(kind, gan), read, run_record=paths.models_dir(gan) / "mlflow-run.json",
        pipeline=paths.pipeline(gan), **logged,
    )


def sample(params: Params, gan: str) -> Path:
    section = params.gan(gan)
    path = paths.samples_path(gan)
    samples = draw_samples(trained_generator(params, gan), section.model, section.sample.n, section.sample.seed)
    save_samples(path, samples)
    _record(params, gan, "sample", section.flat_under(gan, "model", "sample"))
    return path


def figure2(params: Params, gan: str, data_root: str | Path = "data") -> Path:
    """Figure 2's panel for the GAN: fair samples and each row's nearest training image."""
    from advnets.report import figures

    section, data = params.gan(gan), GANS[gan]
    fig = section.figures
    path = paths.figures_dir(gan) / "figure2.png"
    figures.figure2(
        path, trained_generator(params, gan), section.model, data.images(params, "train", data_root),
        fig.sample_rows, fig.sample_cols, fig.seed, fig.scale, image_shape=data.image_shape, display=data.display,
    )
    _record(params, gan, "figures", section.flat_under(gan, "model", "figures"), artifacts=[path])
    return path


def tfd_parzen(params: Params, data_root: str | Path = "data") -> dict:
    """The paper's TFD figure: per fold, sigma chosen on the fold's validation images and its
    test images scored; the mean over folds and the standard error across them."""
    from advnets.data.tfd import load_tfd
    from advnets.device import resolve_device
    from advnets.parzen import PAPER_TABLE1_TFD, evaluate_folds

    parzen = params.tfd.parzen
    device = resolve_device(parzen.device)
    samples = load_samples(paths.samples_path("tfd")).to(device)
    folds = [(load_tfd("valid", f, data_root), load_tfd("test", f, data_root)) for f in parzen.folds]
    result = evaluate_folds(samples, folds, parzen.sigmas, parzen.chunk_size)
    metrics = {
        **result.as_dict(),
        "folds_scored": parzen.folds,
        "paper": {name: {"mean": m, "se": se} for name, (m, se) in PAPER_TABLE1_TFD.items()},
    }
    path = Path("metrics") / slug("tfd") / "parzen.json"
    write_text(path, json.dumps(metrics, indent=2) + "\n")
    # with the sample params: the score is of those samples (the training run holds them once)
    read = {k: v for k, v in params.tfd.flat_under("tfd", "sample", "parzen").items() if changes_results(k)}
    headline = {"parzen.test_ll_mean": result.mean, "parzen.test_ll_se": result.se}
    _record(params, "tfd", "parzen", read, metrics=headline, headline=headline)
    return metrics
