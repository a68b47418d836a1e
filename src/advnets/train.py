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
from advnets.trainer import Trainer

DATA_OUTPUT = "data/mnist"  # the download stage's output, as dvc.lock names it


@dataclass(frozen=True)
class TrainOutputs:
    generator: Path = Path("models/generator.pt")
    discriminator: Path = Path("models/discriminator.pt")
    run_record: Path = Path("models/mlflow-run.json")
    checkpoint: Path = Path("models/checkpoint.pt")  # not a DVC output: removed once training ends
    summary: Path = Path("metrics/train.json")
    curve: Path = Path("metrics/train_curve.csv")


def run_training(
    params: Params,
    data_root: str | Path = "data",
    out: TrainOutputs = TrainOutputs(),
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Train to params.train.epochs, resuming an interrupted run; returns the per-epoch rows."""
    root = tracking.repo_root()
    device = resolve_device(params.train.device)
    trainer = Trainer(params, load_mnist("train", data_root)[0], load_mnist("valid", data_root)[0], device)
    flat = params.flat("data", "model", "train")

    history: list[dict[str, float]] = []
    run_id = None
    saved = checkpoint.load(out.checkpoint, flat)
    if saved is not None:
        trainer.load_state_dict(saved["state"])
        history, run_id = saved["history"], saved["run_id"]
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
            tracking.log_flat_params(params.flat("data", "model", "train", "tracking"))
        mlflow.set_tags(tracking.lineage_tags(root, device, DATA_OUTPUT))
        tracking.write_run_record(out.run_record, run, root)

        while trainer.epoch < params.train.epochs:
            row = trainer.train_epoch()
            history.append(row)
            checkpoint.save(out.checkpoint, trainer.state_dict(), flat, {"history": history, "run_id": run.info.run_id})
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
            _write_metrics(out, history)
            if trainer.epoch % params.train.grid_every == 0 or trainer.epoch == params.train.epochs:
                _log_grid(trainer)
            if on_epoch_end is not None:
                on_epoch_end(trainer)

        _write_metrics(out, history)
        _save_state_dict(out.generator, trainer.nets.generator)
        _save_state_dict(out.discriminator, trainer.nets.discriminator)
        mlflow.log_artifact(str(out.generator), artifact_path="model")
    out.checkpoint.unlink(missing_ok=True)
    return history


def _save_state_dict(path: Path, module: torch.nn.Module) -> None:
    # Through a file object: torch.save(obj, path) stores the (random) temporary file's name in
    # the archive, which would give identical weights a different md5 on every run.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({k: v.cpu() for k, v in module.state_dict().items()}, f)


def _write_metrics(out: TrainOutputs, history: list[dict[str, float]]) -> None:
    write_csv(out.curve, history)
    write_text(out.summary, json.dumps(history[-1], indent=2) + "\n")


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
