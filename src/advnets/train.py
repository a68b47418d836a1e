"""The train stage: resume from the checkpoint if there is one, train, track in MLflow, write outputs."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from torchvision.utils import save_image

from advnets import checkpoint, tracking
from advnets.atomic import atomic_path, write_csv, write_text
from advnets.data import load_mnist
from advnets.device import resolve_device
from advnets.params import Params
from advnets.selection import Selector
from advnets.trainer import Trainer

DATA_OUTPUT = "data/mnist"  # the download stage's output, as dvc.lock names it
DATA_SOURCE = "https://yann.lecun.com/exdb/mnist/"  # where MNIST comes from, for MLflow's dataset input


@dataclass(frozen=True)
class TrainOutputs:
    generator: Path = Path("models/generator.pt")  # the nets of the epoch selected on validation data
    discriminator: Path = Path("models/discriminator.pt")
    run_record: Path = Path("models/mlflow-run.json")
    checkpoint: Path = Path("models/checkpoint.pt")  # not a DVC output: removed once training ends
    summary: Path = Path("metrics/train.json")
    curve: Path = Path("metrics/train_curve.csv")
    selection: Path = Path("metrics/selection.csv")


def run_training(
    params: Params,
    data_root: str | Path = "data",
    out: TrainOutputs = TrainOutputs(),
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Train to params.train.epochs, resuming an interrupted run, and keep the epoch that scores
    best on validation data; returns the per-epoch rows."""
    root, here = tracking.repo_root(), tracking.workspace()
    device = resolve_device(params.train.device)
    valid_images = load_mnist("valid", data_root)[0]
    trainer = Trainer(params, load_mnist("train", data_root)[0], valid_images, device)
    selector = Selector(params, valid_images, device)
    flat = {**params.flat("data", "model", "train", "select"), **_selection_params(params)}

    history: list[dict[str, float]] = []
    scores: list[dict[str, float]] = []
    run_id = None
    saved = checkpoint.load(out.checkpoint, flat)
    if saved is not None:
        trainer.load_state_dict(saved["state"])
        selector.load_state_dict(saved["best"])
        history, scores, run_id = saved["history"], saved["scores"], saved["run_id"]
        if trainer.epoch > params.train.epochs:
            raise checkpoint.ResumeError(
                f"{out.checkpoint} is at epoch {trainer.epoch}, beyond train.epochs = "
                f"{params.train.epochs}; raise train.epochs or remove it: rm {out.checkpoint}"
            )
        print(f"resuming from {out.checkpoint} after epoch {trainer.epoch}")

    experiment = tracking.experiment_id(params.tracking.experiment, root)
    run_name = f"seed{params.train.seed}-{params.train.update}"
    with mlflow.start_run(run_id=run_id, experiment_id=experiment, run_name=run_name) as run:
        if run_id is None:
            tracking.log_flat_params({**flat, **params.flat("tracking")})
            tracking.log_dataset("mnist", DATA_SOURCE, tracking.content_md5(here, DATA_OUTPUT), context="training")
        mlflow.set_tags(tracking.lineage_tags(here, "train", device))
        tracking.write_run_record(out.run_record, run, root)

        while trainer.epoch < params.train.epochs:
            row = trainer.train_epoch()
            history.append(row)
            metrics = {k: v for k, v in row.items() if k != "epoch"}
            if selector.due(trainer.epoch):
                metrics.update(_score_epoch(trainer, selector, scores))
            extra = {"history": history, "scores": scores, "best": selector.state_dict(), "run_id": run.info.run_id}
            checkpoint.save(out.checkpoint, trainer.state_dict(), flat, extra)
            mlflow.log_metrics(metrics, step=row["epoch"])
            _write_metrics(out, history, scores, selector)
            if trainer.epoch % params.train.grid_every == 0 or trainer.epoch == params.train.epochs:
                _log_grid(trainer)
            if on_epoch_end is not None:
                on_epoch_end(trainer)

        if not scores or scores[-1]["epoch"] != trainer.epoch:  # train.epochs lowered to where it stopped
            mlflow.log_metrics(_score_epoch(trainer, selector, scores), step=trainer.epoch)
        _write_metrics(out, history, scores, selector)
        _save_state_dict(out.generator, selector.best["generator"])
        _save_state_dict(out.discriminator, selector.best["discriminator"])
        mlflow.log_metrics({k: float(v) for k, v in selector.summary().items()})
        mlflow.log_artifact(str(out.generator), artifact_path="model")
        mlflow.set_tags(tracking.lineage_tags(here, "train", device))
    out.checkpoint.unlink(missing_ok=True)
    return history


def _selection_params(params: Params) -> dict:
    """The evaluation params the selection reads (it chooses sigma as the Parzen protocol does)."""
    parzen = params.flat("parzen")
    return {key: parzen[key] for key in ("parzen.sigmas", "parzen.valid_points")}


def _score_epoch(trainer: Trainer, selector: Selector, scores: list[dict]) -> dict[str, float]:
    """Score the current generator, keep it if best; its figures as MLflow metrics."""
    score = selector.score(trainer.nets.generator)
    scores.append({"epoch": trainer.epoch, **score})
    selector.consider(trainer.epoch, score, _nets(trainer))
    return {f"select.{k}": v for k, v in score.items()}


def _nets(trainer: Trainer) -> dict[str, torch.nn.Module]:
    return {"generator": trainer.nets.generator, "discriminator": trainer.nets.discriminator}


def _save_state_dict(path: Path, state: dict[str, torch.Tensor]) -> None:
    # Through a file object: torch.save(obj, path) stores the (random) temporary file's name in
    # the archive, which would give identical weights a different md5 on every run.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


def _write_metrics(out: TrainOutputs, history: list[dict], scores: list[dict], selector: Selector) -> None:
    write_csv(out.curve, history)
    if scores:
        write_csv(out.selection, scores)
    summary = {**history[-1], **(selector.summary() if selector.best else {})}
    write_text(out.summary, json.dumps(summary, indent=2) + "\n")


def _log_grid(trainer: Trainer) -> None:
    samples = trainer.grid_samples()
    side = math.isqrt(samples.shape[1])
    if side * side != samples.shape[1]:
        return  # not a square grey image
    nrow = math.isqrt(len(samples))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"epoch-{trainer.epoch:04d}.png"
        save_image(samples.view(-1, 1, side, side), path, nrow=nrow, padding=2)
        mlflow.log_artifact(str(path), artifact_path="grids")
