"""The train stages: resume from the checkpoint if there is one, train, track in MLflow, write
outputs. MNIST keeps the epoch its validation selection chooses; the other datasets' GANs (no
Parzen figure to select on, or TFD's fixed epochs) keep the last."""

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

from advnets import checkpoint, datasets, repository, tracking
from advnets.atomic import write_csv, write_text, write_torch
from advnets.collapse import D_WON_BELOW, d_has_won
from advnets.data import load_mnist, md5_of
from advnets.datasets import GANS, slug
from advnets.device import resolve_device
from advnets.figures import for_display
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

    @classmethod
    def of_gan(cls, gan: str) -> TrainOutputs:
        """A GAN of another dataset: models/<slug>/ and metrics/<slug>/ (slug: cifar10_fc ...)."""
        models, metrics = datasets.models_dir(gan), Path("metrics") / slug(gan)
        return cls(
            models / "generator.pt", models / "discriminator.pt", models / "mlflow-run.json",
            models / "checkpoint.pt", metrics / "train.json", metrics / "train_curve.csv", metrics / "selection.csv",
        )


@dataclass(frozen=True)
class TrainingJob:
    """One GAN's training, whatever the dataset."""

    gan: object  # .model and .train: MNIST's Params, or a GAN section of another dataset
    flat_params: dict  # what the run is: logged to MLflow, and a checkpoint must match it
    tracking_params: dict  # where it is tracked: logged too
    experiment: str
    run_name: str
    stage: str  # the DVC stage, for the lineage tags
    pipeline: str  # the folder of its dvc.yaml ("" for the root)
    dataset: tuple[str, str, str]  # MLflow dataset input: name, source, the DVC output it is in
    train_images: torch.Tensor
    valid_images: torch.Tensor | None  # for the monitor (None: no monitor)
    image_shape: tuple[int, int, int]
    display: str
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
    job = TrainingJob(
        gan=params,
        flat_params={**params.flat("data", "model", "train", "select"), **_selection_params(params)},
        tracking_params=params.flat("tracking"),
        experiment=params.tracking.experiment,
        run_name=f"seed{params.train.seed}-{params.train.update}",
        stage="train",
        pipeline="",
        dataset=("mnist", DATA_SOURCE, DATA_OUTPUT),
        train_images=load_mnist("train", data_root)[0],
        valid_images=valid_images,
        image_shape=(1, 28, 28),
        display="unit",
        selector=Selector(params, valid_images, device),
    )
    return train_gan(job, device, out, on_epoch_end)


def run_gan_training(
    params: Params,
    gan: str,
    data_root: str | Path = "data",
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Another dataset's GAN (advnets.datasets.GANS); TFD's second stage stacks on the first's G."""
    section, data = params.gan(gan), GANS[gan]
    dataset = gan.split(".")[0]
    flat = {**section.flat_under(gan, "model", "train"), **getattr(params, dataset).flat_under(dataset, "data")}
    pretrained = None
    if gan == "tfd":
        from advnets.sampling import load_generator

        first = TrainOutputs.of_gan("tfd.pretrain").generator
        pretrained = load_generator(first, params.tfd.pretrain.model, data.image_shape)
        flat["tfd.pretrained_md5"] = md5_of(first)  # a new first stage is a new run
    device = resolve_device(section.train.device)
    tracked = params.tfd if gan == "tfd.pretrain" else section
    job = TrainingJob(
        gan=section,
        flat_params=flat,
        tracking_params=tracked.flat_under(dataset if gan == "tfd.pretrain" else gan, "tracking"),
        experiment=tracked.tracking.experiment,
        run_name=f"{slug(gan)}-seed{section.train.seed}",
        stage=datasets.stage("train", gan),
        pipeline=datasets.pipeline(gan),
        dataset=(data.dataset, data.source, f"data/{data.dataset}"),
        train_images=data.images(params, "train", data_root),
        valid_images=data.images(params, "valid", data_root),
        image_shape=data.image_shape,
        display=data.display,
        pretrained=pretrained,
    )
    return train_gan(job, device, TrainOutputs.of_gan(gan), on_epoch_end)


def train_gan(
    job: TrainingJob,
    device: torch.device,
    out: TrainOutputs,
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> list[dict[str, float]]:
    """Train job.gan to its train.epochs, resuming an interrupted run; returns the per-epoch rows."""
    root, here = tracking.repo_root(), tracking.workspace()
    trainer = Trainer(job.gan, job.train_images, job.valid_images, device, job.image_shape, job.pretrained)
    selector = job.selector
    epochs = job.gan.train.epochs

    history: list[dict[str, float]] = []
    scores: list[dict[str, float]] = []
    run_id = None
    saved = checkpoint.load(out.checkpoint, job.flat_params)
    if saved is not None:
        trainer.load_state_dict(saved["state"])
        if selector:
            selector.load_state_dict(saved["best"])
        history, scores, run_id = saved["history"], saved["scores"], saved["run_id"]
        if trainer.epoch > epochs:
            raise checkpoint.ResumeError(
                f"{out.checkpoint} is at epoch {trainer.epoch}, beyond train.epochs = "
                f"{epochs}; raise train.epochs or remove it: rm {out.checkpoint}"
            )
        print(f"resuming from {out.checkpoint} after epoch {trainer.epoch}")

    experiment = tracking.experiment_id(job.experiment, root)
    with _start_run(run_id, experiment, job.run_name, out.checkpoint) as run:
        if run_id is None:  # train.epochs and the like may change on a resume: logged at the end
            tracking.log_flat_params({**checkpoint.training_params(job.flat_params), **job.tracking_params})
            name, source, output = job.dataset
            digest = repository.content_md5(here, output, repository.locked_md5s(here, job.pipeline))
            tracking.log_dataset(name, source, digest, context="training")
        lineage = tracking.lineage_tags(here, job.stage, device, job.pipeline, files=("deps",))  # as loaded
        if saved is not None:
            _note_resume(run.info.run_id, trainer.epoch, lineage, repository.stage_files(here, job.stage, job.pipeline)["deps"])
        mlflow.set_tags(lineage)
        tracking.write_run_record(out.run_record, run, root)
        _log_unlogged_epochs(run.info.run_id, history, scores)

        d_won_said = False
        while trainer.epoch < epochs:
            row = trainer.train_epoch()
            history.append(row)
            if not d_won_said and d_has_won(row["d_fake"]):
                d_won_said = True
                _say_d_has_won(row)
            if selector and selector.due(trainer.epoch):
                _score_epoch(trainer, selector, scores)
            best = selector.state_dict() if selector else None
            extra = {"history": history, "scores": scores, "best": best, "run_id": run.info.run_id}
            checkpoint.save(out.checkpoint, trainer.state_dict(), job.flat_params, extra)
            scored = scores[-1] if scores and scores[-1]["epoch"] == row["epoch"] else None
            mlflow.log_metrics(_epoch_metrics(row, scored), step=row["epoch"])
            _write_metrics(out, history, scores, selector)
            if trainer.epoch % job.gan.train.grid_every == 0 or trainer.epoch == epochs:
                _log_grid(trainer, job.image_shape, job.display)
            if on_epoch_end is not None:
                on_epoch_end(trainer)

        if selector and (not scores or scores[-1]["epoch"] != trainer.epoch):  # epochs lowered to where it stopped
            _score_epoch(trainer, selector, scores)
            mlflow.log_metrics(_score_metrics(scores[-1]), step=trainer.epoch)
        _write_metrics(out, history, scores, selector)
        result = selector.best if selector else {k: _on_cpu(v.state_dict()) for k, v in _nets(trainer).items()}
        write_torch(out.generator, result["generator"])
        write_torch(out.discriminator, result["discriminator"])
        if selector:
            mlflow.log_metrics({k: float(v) for k, v in selector.summary().items()})
        mlflow.log_artifact(str(out.generator), artifact_path="model")
        _log_resumable_params(run.info.run_id, job.flat_params)
        mlflow.set_tags(tracking.file_tags(here, job.stage, job.pipeline, files=("outs",)))
    out.checkpoint.unlink(missing_ok=True)
    return history


def _start_run(run_id: str | None, experiment: str, name: str, saved: Path) -> mlflow.ActiveRun:
    """A new MLflow run, or the one the checkpoint continues: refused with the way out if the store
    no longer has it (deleted, or another tracking URI)."""
    try:
        return mlflow.start_run(run_id=run_id, experiment_id=experiment, run_name=name)
    except mlflow.exceptions.MlflowException as exc:
        if run_id is None:
            raise
        raise checkpoint.ResumeError(
            f"{saved} continues MLflow run {run_id}, which the store at {mlflow.get_tracking_uri()} cannot "
            f"continue ({exc.message}); restore it there, or start afresh: rm {saved}"
        ) from None


def _log_resumable_params(run_id: str, flat_params: dict) -> None:
    """The params a resume may change (train.epochs, ...), as the run ended: MLflow params are
    write-once. A run begun by older code logged them at its start: those are kept, with a warning
    where they differ."""
    logged = mlflow.get_run(run_id).data.params
    resumable = tracking.param_strings(checkpoint.resumable_params(flat_params))
    for key, value in resumable.items():
        if key in logged and logged[key] != value:
            print(f"warning: run {run_id} keeps {key}={logged[key]}, logged as it began (now {value}); see metrics/train.json")
    tracking.log_flat_params({k: v for k, v in resumable.items() if k not in logged})


def _note_resume(run_id: str, epoch: int, lineage: dict[str, str], deps: list[str]) -> None:
    """Keep in the run's tags what changed since its previous session (commit, git.dirty, torch,
    device, the md5 of each stage dependency), since the lineage tags set next name only this
    session's; warn if anything did."""
    tags = mlflow.get_run(run_id).data.tags
    changes = "; ".join(tracking.lineage_changes(tags, lineage, deps))
    key = f"{tracking.RESUME_TAG}{epoch}"
    earlier = tags.get(key, "nothing")  # resumed here before, by a session that checkpointed no epoch
    if changes:
        note = changes if earlier == "nothing" else f"{earlier}; then {changes}"
        limit = tracking.TAG_VALUE_LIMIT
        mlflow.set_tag(key, note if len(note) <= limit else "…" + note[-(limit - 1):])  # the newest kept
        print(
            f"warning: resuming after epoch {epoch} with another lineage than the run's previous session: "
            f"{changes}. The run's lineage tags will name this session's; tag {key} keeps the change.",
            flush=True,
        )
    elif key not in tags:
        mlflow.set_tag(key, "nothing")


def _say_d_has_won(row: dict[str, float]) -> None:
    """Tell the user, and tag the run, the first time (in this process) an epoch ends with D
    rejecting nearly every fake; training goes on, as the official code's would."""
    print(
        f"epoch {row['epoch']}: D has won: mean D(G(z)) over the epoch was {row['d_fake']:.4f}, below "
        f"{D_WON_BELOW:g}. No tracked run that got here has recovered (README, Results); training goes on.",
        flush=True,
    )
    if "d_won_at_epoch" not in mlflow.get_run(mlflow.active_run().info.run_id).data.tags:  # a resumed run keeps the first
        mlflow.set_tag("d_won_at_epoch", row["epoch"])


def _selection_params(params: Params) -> dict:
    """The evaluation params the selection reads (it chooses sigma as the Parzen protocol does)."""
    parzen = params.flat("parzen")
    return {key: parzen[key] for key in ("parzen.sigmas", "parzen.valid_points")}


def _score_epoch(trainer: Trainer, selector: Selector, scores: list[dict]) -> None:
    """Score the current generator (appended to scores) and keep it if best."""
    score = selector.score(trainer.nets.generator)
    scores.append({"epoch": trainer.epoch, **score})
    selector.consider(trainer.epoch, score, _nets(trainer))


def _score_metrics(score: dict[str, float]) -> dict[str, float]:
    return {f"select.{k}": v for k, v in score.items() if k != "epoch"}


def _epoch_metrics(row: dict[str, float], score: dict[str, float] | None) -> dict[str, float]:
    """An epoch's figures as MLflow metrics, with its selection score if it was scored."""
    return {**{k: v for k, v in row.items() if k != "epoch"}, **(_score_metrics(score) if score else {})}


def _log_unlogged_epochs(run_id: str, history: list[dict], scores: list[dict]) -> None:
    """On a resume, log the checkpointed epochs the run lacks: a process killed after saving the
    checkpoint but before logging the epoch would otherwise leave a gap in its metrics."""
    if not history:
        return
    logged = {m.step for m in tracking.client().get_metric_history(run_id, "d_loss")}
    by_epoch = {score["epoch"]: score for score in scores}
    for row in history:
        if row["epoch"] not in logged:
            mlflow.log_metrics(_epoch_metrics(row, by_epoch.get(row["epoch"])), step=row["epoch"])


def _nets(trainer: Trainer) -> dict[str, torch.nn.Module]:
    return {"generator": trainer.nets.generator, "discriminator": trainer.nets.discriminator}


def _on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Saved weights are the same bytes whatever device trained them."""
    return {key: tensor.cpu() for key, tensor in state.items()}


def _write_metrics(out: TrainOutputs, history: list[dict], scores: list[dict], selector: Selector | None) -> None:
    write_csv(out.curve, history)
    if scores:
        write_csv(out.selection, scores)
    summary = {**history[-1], **(selector.summary() if selector and selector.best else {})}
    write_text(out.summary, json.dumps(summary, indent=2) + "\n")


def _log_grid(trainer: Trainer, image_shape: tuple[int, int, int], display: str) -> None:
    samples = for_display(trainer.grid_samples(), display)
    nrow = math.isqrt(len(samples))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"epoch-{trainer.epoch:04d}.png"
        save_image(samples.view(-1, *image_shape), path, nrow=nrow, padding=2)
        mlflow.log_artifact(str(path), artifact_path="grids")
