"""The training loop every run shares, whoever records it: epochs of the Trainer, the validation
selection, a checkpoint after every epoch (so an interrupted run resumes bit for bit), and the
selected nets at the end. What a run reports goes to a `TrainingLog`: the train stage passes an
MLflow one (advnets.provenance.training_log), the runner for machines without MLflow a JSON
record (advnets.provenance.runlog). The loop itself knows neither.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from advnets.atomic import remove_when_done, write_csv, write_text, write_torch
from advnets.gan import checkpoint
from advnets.gan.collapse import D_WON_BELOW, d_has_won
from advnets.gan.trainer import Trainer


@dataclass(frozen=True)
class TrainFiles:
    """Where a run keeps its state and results; None: not kept (a benchmark's run)."""

    checkpoint: Path | None = None  # removed once training ends
    generator: Path | None = None  # the nets of the selected epoch (the last, without a selector)
    discriminator: Path | None = None
    summary: Path | None = None  # the last epoch's row and the selection, as JSON
    curve: Path | None = None  # every epoch's row, as CSV
    selection: Path | None = None  # every scored epoch, as CSV


@dataclass
class TrainingRun:
    """One run as the loop has it: what a TrainingLog reads."""

    trainer: Trainer
    selector: Any | None  # an advnets.eval.selection.Selector (duck-typed: gan/ builds on no other layer)
    epochs: int
    files: TrainFiles
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    scores: list[dict[str, float]] = field(default_factory=list)  # one per scored epoch
    resumed_after: int | None = None  # the epoch a checkpoint continued from, if one did
    d_won_at: int | None = None  # the first epoch (of this process) that ended with D having won

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    def nets(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.trainer.nets.generator, "discriminator": self.trainer.nets.discriminator}

    def result(self) -> dict[str, dict[str, torch.Tensor]]:
        """The run's nets: the selected epoch's, or the last epoch's without a selector (on the CPU:
        saved weights are the same bytes whatever device trained them)."""
        if self.selector is not None:
            return {name: self.selector.best[name] for name in ("generator", "discriminator")}
        return {name: {k: v.cpu() for k, v in net.state_dict().items()} for name, net in self.nets().items()}

    def summary(self) -> dict[str, float]:
        best = self.selector.summary() if self.selector is not None and self.selector.best else {}
        return {**self.history[-1], **best}


class TrainingLog:
    """What a run reports, and to whom. The loop calls begin once, epoch after every epoch, then end
    (or abort if the run failed). This one reports nothing."""

    def begin(self, run: TrainingRun, resumed: Any | None) -> Any:
        """resumed: what begin returned in the session the checkpoint continues (None for a new run).
        Returns what a checkpoint keeps to continue this log (the MLflow run id, say)."""
        return None

    def epoch(self, run: TrainingRun, row: dict[str, float], score: dict[str, float] | None, seconds: dict[str, float]) -> None:
        """After each epoch, its checkpoint written. score: its selection score, if it was scored.
        seconds: "epoch" (the epoch's wall time), and "select" when it was scored."""

    def end(self, run: TrainingRun) -> None:
        """The run finished: its result files are written, its checkpoint still there."""

    def abort(self, run: TrainingRun, error: BaseException) -> None:
        """The run stopped on an error or an interrupt; its checkpoint is kept."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    trainer: Trainer,
    epochs: int,
    files: TrainFiles,
    log: TrainingLog,
    checkpoint_params: dict[str, Any],
    selector: Any | None = None,
    stop: Callable[[], bool] | None = None,
    on_epoch_end: Callable[[Trainer], None] | None = None,
) -> TrainingRun:
    """Train to `epochs`, resuming from files.checkpoint if it holds a run of `checkpoint_params`.
    stop: asked before each epoch; True ends the run there, as if it had been that long."""
    run = TrainingRun(trainer, selector, epochs, files)
    saved = checkpoint.load(files.checkpoint, checkpoint_params) if files.checkpoint else None
    if saved is not None:
        trainer.load_state_dict(saved["state"])
        if selector is not None:
            selector.load_state_dict(saved["best"])
        run.history, run.scores, run.resumed_after = saved["history"], saved["scores"], trainer.epoch
        if trainer.epoch > epochs:
            raise checkpoint.ResumeError(
                f"{files.checkpoint} is at epoch {trainer.epoch}, beyond train.epochs = "
                f"{epochs}; raise train.epochs or remove it: rm {files.checkpoint}"
            )
        print(f"resuming from {files.checkpoint} after epoch {trainer.epoch}")

    log_state = log.begin(run, saved["run_id"] if saved is not None else None)  # "run_id": the checkpoints' key
    try:
        while trainer.epoch < epochs and not (stop and stop()):
            _sync(trainer.device)
            start = time.perf_counter()
            row = trainer.train_epoch()
            _sync(trainer.device)
            seconds = {"epoch": time.perf_counter() - start}
            run.history.append(row)
            if run.d_won_at is None and d_has_won(row["d_fake"]):
                run.d_won_at = row["epoch"]
                print(
                    f"epoch {row['epoch']}: D has won: mean D(G(z)) over the epoch was {row['d_fake']:.4f}, below "
                    f"{D_WON_BELOW:g}. No tracked run that got here has recovered (docs/findings.md); training goes on.",
                    flush=True,
                )
            score = None
            if selector is not None and selector.due(trainer.epoch):
                start = time.perf_counter()
                score = _score_epoch(run)
                _sync(trainer.device)
                seconds["select"] = time.perf_counter() - start
            if files.checkpoint:
                extra = {"history": run.history, "scores": run.scores, "best": selector.state_dict() if selector else None,
                         "run_id": log_state}
                checkpoint.save(files.checkpoint, trainer.state_dict(), checkpoint_params, extra)
            _write_metrics(run)
            log.epoch(run, row, score, seconds)
            if on_epoch_end is not None:
                on_epoch_end(trainer)

        if selector is not None and (not run.scores or run.scores[-1]["epoch"] != trainer.epoch):
            _score_epoch(run)  # the run ended short of a scored epoch: the last is always scored
        _write_metrics(run)
        result = run.result()
        for name in ("generator", "discriminator"):
            if getattr(files, name):
                write_torch(getattr(files, name), result[name])
        log.end(run)
    except BaseException as error:
        log.abort(run, error)
        raise
    if files.checkpoint:
        # In a stage, only once its outputs are in place: a kill before that resumes from here.
        remove_when_done(files.checkpoint)
    return run


def _score_epoch(run: TrainingRun) -> dict[str, float]:
    """Score the current generator (appended to run.scores) and keep its nets if best."""
    trainer = run.trainer
    score = run.selector.score(trainer.nets.generator)
    run.scores.append({"epoch": trainer.epoch, **score})
    run.selector.consider(trainer.epoch, score, run.nets())
    return score


def _write_metrics(run: TrainingRun) -> None:
    if not run.history:
        return
    files = run.files
    if files.curve:
        write_csv(files.curve, run.history)
    if run.scores and files.selection:
        write_csv(files.selection, run.scores)
    if files.summary:
        write_text(files.summary, json.dumps(run.summary(), indent=2) + "\n")
