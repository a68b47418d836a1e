"""The train stages' bodies: which data, params and files a GAN's training has; the loop
(advnets.gan.loop) trains it and an MLflow TrainingLog records it. MNIST keeps the epoch its
validation selection chooses; the other datasets' GANs (no Parzen figure to select on, or TFD's
fixed epochs) keep the last."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from advnets.atomic import md5_of
from advnets.data.mnist import load_mnist
from advnets.data.registry import GANS
from advnets.device import resolve_device
from advnets.eval.selection import Selector
from advnets.gan import loop
from advnets.gan.loop import TrainFiles
from advnets.gan.trainer import Trainer
from advnets.params import Params
from advnets.pipeline import paths
from advnets.pipeline.paths import slug
from advnets.provenance.training_log import MlflowTrainingLog, RunDescription

DATA_OUTPUT = "data/mnist"  # the download stage's output, as dvc.lock names it
DATA_SOURCE = "https://yann.lecun.com/exdb/mnist/"  # where MNIST comes from, for MLflow's dataset input


@dataclass(frozen=True)
class TrainOutputs(TrainFiles):
    """The loop's files (the checkpoint is no DVC output: removed once the outputs are in place),
    and the record of the MLflow run."""

    checkpoint: Path = Path("models/checkpoint.pt")
    generator: Path = Path("models/generator.pt")  # the nets of the epoch selected on validation data
    discriminator: Path = Path("models/discriminator.pt")
    summary: Path = Path("metrics/train.json")
    curve: Path = Path("metrics/train_curve.csv")
    selection: Path = Path("metrics/selection.csv")
    run_record: Path = Path("models/mlflow-run.json")

    @classmethod
    def of_gan(cls, gan: str) -> TrainOutputs:
        """A GAN of another dataset: models/<slug>/ and metrics/<slug>/ (slug: cifar10_fc ...)."""
        models, metrics = paths.models_dir(gan), Path("metrics") / slug(gan)
        return cls(
            models / "checkpoint.pt", models / "generator.pt", models / "discriminator.pt",
            metrics / "train.json", metrics / "train_curve.csv", metrics / "selection.csv", models / "mlflow-run.json",
        )


@dataclass(frozen=True)
class TrainingJob:
    """One GAN's training, whatever the dataset: its params, its data, and its MLflow run."""

    gan: object  # .model and .train: MNIST's Params, or a GAN section of another dataset
    run: RunDescription
    train_images: torch.Tensor
    valid_images: torch.Tensor | None  # for the monitor (None: no monitor)
    selector: Selector | None = None  # None: the last epoch's nets are the result
    pretrained: torch.nn.Module | None = None  # TFD's first-stage G


def run_training(
    params: Params,
    data_root: str | Path = "data",
    out: TrainOutputs = TrainOutputs(),
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """MNIST: train to params.train.epochs, resuming an interrupted run, and keep the epoch that
    scores best on validation data; returns the per-epoch rows."""
    device = resolve_device(params.train.device)
    valid_images = load_mnist("valid", data_root)[0]
    run = RunDescription(
        flat_params={**params.flat("data", "model", "train", "select"), **_selection_params(params)},
        tracking_params=params.flat("tracking"),
        experiment=params.tracking.experiment,
        run_name=f"seed{params.train.seed}-{params.train.update}",
        stage="train",
        pipeline="",
        dataset=("mnist", DATA_SOURCE, DATA_OUTPUT),
        image_shape=(1, 28, 28),
        display="unit",
        run_record=out.run_record,
        grid_every=params.train.grid_every,
    )
    job = TrainingJob(params, run, load_mnist("train", data_root)[0], valid_images, Selector(params, valid_images, device))
    return train_gan(job, device, out, on_epoch_end)


def run_gan_training(
    params: Params,
    gan: str,
    data_root: str | Path = "data",
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Another dataset's GAN (advnets.data.registry.GANS); TFD's second stage stacks on the first's G."""
    section, data = params.gan(gan), GANS[gan]
    dataset = gan.split(".")[0]
    flat = {**section.flat_under(gan, "model", "train"), **getattr(params, dataset).flat_under(dataset, "data")}
    pretrained = None
    if gan == "tfd":
        from advnets.gan.sampling import load_generator

        first = TrainOutputs.of_gan("tfd.pretrain").generator
        pretrained = load_generator(first, params.tfd.pretrain.model, data.image_shape)
        flat["tfd.pretrained_md5"] = md5_of(first)  # a new first stage is a new run
    device = resolve_device(section.train.device)
    tracked = params.tfd if gan == "tfd.pretrain" else section
    out = TrainOutputs.of_gan(gan)
    run = RunDescription(
        flat_params=flat,
        tracking_params=tracked.flat_under(dataset if gan == "tfd.pretrain" else gan, "tracking"),
        experiment=tracked.tracking.experiment,
        run_name=f"{slug(gan)}-seed{section.train.seed}",
        stage=paths.stage("train", gan),
        pipeline=paths.pipeline(gan),
        dataset=(data.dataset, data.source, f"data/{data.dataset}"),
        image_shape=data.image_shape,
        display=data.display,
        run_record=out.run_record,
        grid_every=section.train.grid_every,
    )
    job = TrainingJob(
        section, run, data.images(params, "train", data_root), data.images(params, "valid", data_root),
        pretrained=pretrained,
    )
    return train_gan(job, device, out, on_epoch_end)


def train_gan(
    job: TrainingJob,
    device: torch.device,
    out: TrainOutputs,
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Train job.gan to its train.epochs, resuming an interrupted run; returns the per-epoch rows.
    A run that finished with these very params, code and data, whose outputs are in place, is not
    repeated (the stage was killed after training ended, before DVC recorded it)."""
    log = MlflowTrainingLog(job.run)
    if not out.checkpoint.exists() and (done := log.finished_run([out.generator, out.discriminator, out.summary, out.curve])):
        print(f"{out.generator} and the other outputs in place are those of MLflow run {done}, which finished "
              f"training with these very params, code and data: not training again (to retrain, rm {out.run_record})")
        with out.curve.open() as f:
            return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(f)]
    trainer = Trainer(job.gan, job.train_images, job.valid_images, device, job.run.image_shape, job.pretrained)
    run = loop.train(
        trainer, job.gan.train.epochs, out, log, job.run.flat_params,
        selector=job.selector, on_epoch_end=on_epoch_end,
    )
    return run.history


def _selection_params(params: Params) -> dict:
    """The evaluation params the selection reads (it chooses sigma as the Parzen protocol does)."""
    parzen = params.flat("parzen")
    return {key: parzen[key] for key in ("parzen.sigmas", "parzen.valid_points")}
