"""The train stages' TrainingLog: one MLflow run per training run, continued by a resumed one, with
the params, the dataset, the lineage tags, every epoch's figures, sample grids and the selected
generator as the `model` artifact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch
from torchvision.utils import make_grid

from advnets.atomic import pending
from advnets.gan import checkpoint
from advnets.gan.loop import TrainingLog, TrainingRun
from advnets.gan.sampling import for_display
from advnets.provenance import repository, tracking


@dataclass(frozen=True)
class RunDescription:
    """What the MLflow run of one training is, and where its lineage comes from."""

    flat_params: dict  # what the run is: logged, and a checkpoint must match it
    tracking_params: dict  # where it is tracked: logged too
    experiment: str
    run_name: str
    stage: str  # the DVC stage, for the lineage tags
    pipeline: str  # the folder of its dvc.yaml ("" for the root)
    dataset: tuple[str, str, str]  # MLflow dataset input: name, source, the DVC output it is in
    image_shape: tuple[int, int, int]
    display: str  # for the sample grids: advnets.gan.sampling.for_display
    run_record: Path  # the DVC output that points at the run
    grid_every: int


GRID_KEY = "samples"  # the image key of the per-epoch sample grids


class MlflowTrainingLog(TrainingLog):
    def __init__(self, description: RunDescription):
        self.what = description
        self.run: mlflow.ActiveRun | None = None
        self._scored_steps: set[int] = set()

    def begin(self, run: TrainingRun, resumed: str | None) -> str:
        what, root, here = self.what, tracking.repo_root(), tracking.workspace()
        experiment = tracking.experiment_id(what.experiment, root)
        self.run = _start_run(resumed, experiment, what.run_name, run.files.checkpoint)
        run_id = self.run.info.run_id
        if resumed is None:  # train.epochs and the like may change on a resume: logged at the end
            tracking.log_flat_params({**checkpoint.training_params(what.flat_params), **what.tracking_params})
            name, source, output = what.dataset
            digest = repository.content_md5(here, output, repository.locked_md5s(here, what.pipeline))
            tracking.log_dataset(name, source, digest, context="training")
        lineage = tracking.lineage_tags(here, what.stage, run.device, what.pipeline, files=("deps",))  # as loaded
        if run.resumed_after is not None:
            deps = [key.removeprefix(tracking.MD5_TAG) for key in lineage if key.startswith(tracking.MD5_TAG)]
            _note_resume(run_id, run.resumed_after, lineage, deps)
        mlflow.set_tags(lineage)
        if resumed is None:
            self._name(run, lineage)
        tracking.write_run_record(what.run_record, self.run, root)
        self._log_unlogged_epochs(run)
        return run_id

    def epoch(self, run: TrainingRun, row: dict[str, float], score: dict[str, float] | None, seconds: dict[str, float]) -> None:
        if run.d_won_at == row["epoch"] and "d_won_at_epoch" not in mlflow.get_run(self.run.info.run_id).data.tags:
            mlflow.set_tag("d_won_at_epoch", row["epoch"])  # a resumed run keeps the first
        mlflow.log_metrics(_epoch_metrics(row, score), step=row["epoch"])
        if score is not None:
            self._scored_steps.add(row["epoch"])
        epoch = run.trainer.epoch
        if epoch % self.what.grid_every == 0 or epoch == run.epochs:
            self._log_grid(run)

    def end(self, run: TrainingRun) -> None:
        if run.scores and run.scores[-1]["epoch"] not in self._scored_steps:
            mlflow.log_metrics(_score_metrics(run.scores[-1]), step=run.trainer.epoch)  # scored after the loop
        if run.selector is not None:
            mlflow.log_metrics({k: float(v) for k, v in run.selector.summary().items()})
        if run.files.generator:
            mlflow.log_artifact(str(pending(run.files.generator)), artifact_path="model")
        _log_resumable_params(self.run.info.run_id, self.what.flat_params)
        outs = tracking.file_tags(tracking.workspace(), self.what.stage, self.what.pipeline, files=("outs",))
        mlflow.set_tags(outs)
        if run.files.generator and not self.what.pipeline:  # MNIST's G: a registered MLflow model too
            self._log_model(run, outs)
        if run.resumed_after is not None:  # train.epochs may have changed on the resume
            self._name(run, mlflow.get_run(self.run.info.run_id).data.tags)
        mlflow.end_run("FINISHED")

    def finished_run(self, outputs: list[Path]) -> str | None:
        """The FINISHED run whose outputs (the stage's in dvc.yaml, `outputs` at least) are all in
        place, trained with these very params, code and data (a stage killed after its training
        ended, before DVC recorded it: DVC runs it again, and it need not train again); None if
        there is no such run."""
        what, here = self.what, tracking.workspace()
        if not what.run_record.is_file():
            return None
        try:
            run = tracking.client().get_run(tracking.read_run_id(what.run_record))
        except (mlflow.exceptions.MlflowException, ValueError, KeyError):
            return None  # a record of another store, or none that can be read: train
        if run.info.status != "FINISHED":
            return None
        logged, tags = run.data.params, run.data.tags
        wanted = tracking.param_strings({**what.flat_params, **what.tracking_params})
        if any(logged.get(key) != value for key, value in wanted.items()):
            return None
        outs = tracking.file_tags(here, what.stage, what.pipeline, files=("outs",))
        declared = repository.stage_files(here, what.stage, what.pipeline)["outs"]
        keys = {tracking.MD5_TAG + str(path) for path in [*declared, *(p.as_posix() for p in outputs)]}
        if any(tags.get(key) is None or tags.get(key) != outs.get(key) for key in keys):
            return None
        deps = tracking.lineage_tags(here, what.stage, None, what.pipeline, files=("deps",))
        code_root = here if (here / "src").is_dir() else repository.project(here)
        for key, md5 in tags.items():
            if key.startswith(tracking.MD5_TAG) and key not in outs:
                path = key.removeprefix(tracking.MD5_TAG)
                now = deps[key] if key in deps else repository.content_md5(code_root, path)  # hashed only if not loaded
                if now != md5:
                    return None
        return run.info.run_id

    def abort(self, run: TrainingRun, error: BaseException) -> None:
        if self.run is not None and mlflow.active_run() is not None:
            mlflow.end_run(tracking.end_status(error))

    def _log_model(self, run: TrainingRun, outs: dict[str, str]) -> None:
        from advnets.gan.nets import sample_noise
        from advnets.params import ModelParams
        from advnets.provenance import logged_model

        model = {key.removeprefix("model."): value for key, value in self.what.flat_params.items() if key.startswith("model.")}
        example = sample_noise(2, ModelParams.model_validate(model), generator=torch.Generator().manual_seed(0)).numpy()
        tags = mlflow.get_run(self.run.info.run_id).data.tags
        lineage = {k: v for k, v in {**tags, **outs}.items() if k.startswith(("git.", "DVC_EXP_NAME", tracking.MD5_TAG + "models/generator"))}
        logged_model.log_generator(pending(run.files.generator), model, example, lineage)

    def _name(self, run: TrainingRun, tags: dict[str, str]) -> None:
        """Name the run (unique: tracking.run_name) and describe what made it."""
        run_id = self.run.info.run_id
        tracking.client().update_run(run_id, name=tracking.run_name(self.what.run_name, run.epochs, run_id))
        what = f"A training of {run.epochs} epochs ({self.what.run_name})"
        mlflow.set_tag("mlflow.note.content", tracking.run_description(tags, self.what.stage, what))

    def _log_unlogged_epochs(self, run: TrainingRun) -> None:
        """On a resume, log the checkpointed epochs the run lacks: a process killed after saving the
        checkpoint but before logging the epoch would otherwise leave a gap in its metrics."""
        if not run.history:
            return
        logged = {m.step for m in tracking.client().get_metric_history(self.run.info.run_id, "d_loss")}
        by_epoch = {score["epoch"]: score for score in run.scores}
        self._scored_steps.update(by_epoch)
        for row in run.history:
            if row["epoch"] not in logged:
                mlflow.log_metrics(_epoch_metrics(row, by_epoch.get(row["epoch"])), step=row["epoch"])

    def _log_grid(self, run: TrainingRun) -> None:
        """The samples of the fixed grid noise as one image under the key `samples`, step = epoch:
        the run page's image view steps through the epochs, and Compare shows runs side by side."""
        trainer = run.trainer
        samples = for_display(trainer.grid_samples(), self.what.display)
        grid = make_grid(samples.view(-1, *self.what.image_shape), nrow=math.isqrt(len(samples)), padding=2)
        pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # as save_image
        mlflow.log_image(pixels, key=GRID_KEY, step=trainer.epoch, synchronous=True)


def _start_run(run_id: str | None, experiment: str, name: str, saved: Path | None) -> mlflow.ActiveRun:
    """A new MLflow run, or the one the checkpoint continues: refused with the way out if the store
    no longer has it (deleted, or another tracking URI)."""
    try:
        return mlflow.start_run(run_id=run_id, experiment_id=experiment, run_name=name,
                                tags={tracking.OWNER_TAG: tracking.owner()})  # from its first moment
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
    device, the md5 of each file the stage depends on), since the lineage tags set next name only
    this session's; warn if anything did."""
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


def _score_metrics(score: dict[str, float]) -> dict[str, float]:
    return {f"select.{k}": v for k, v in score.items() if k != "epoch"}


def _epoch_metrics(row: dict[str, float], score: dict[str, float] | None) -> dict[str, Any]:
    """An epoch's figures as MLflow metrics, with its selection score if it was scored."""
    return {**{k: v for k, v in row.items() if k != "epoch"}, **(_score_metrics(score) if score else {})}
