"""The run log of a training run made without MLflow (benchmarks/epoch_time.py, on a machine without
the tracking stack, such as a lent GPU machine): `JsonRunLog` writes it as the shared training
loop reports (advnets.gan.loop), and `load_record` reads it back for `advnets record`
(advnets.provenance.record), which logs it to MLflow. MLflow is not imported here.

A record holds the params, commit, device, torch version, the data's md5s, every epoch's figures
(with its wall time, and the selection's score and time where it was scored) and the selected
generator's md5; it is rewritten at every scored epoch (finished: false) and at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from advnets.atomic import md5_of, write_text, write_torch
from advnets.errors import AdvnetsError
from advnets.gan.loop import TrainingLog, TrainingRun
from advnets.params import Params, ParamsError, validate

TRAINED_BY = "benchmarks/epoch_time.py"
FIELDS = ("commit", "device", "torch", "params", "data_md5", "rows", "selected_epoch", "generator_md5")


class RecordError(AdvnetsError):
    """A record that cannot be logged as it stands: incomplete, or not matching its files."""


SCORE_KEYS = ("valid_ll", "valid_ll_se", "sigma")  # what the selection gives a scored epoch (select.*)


def load_record(path: Path, epochs: int | None = None) -> tuple[dict[str, Any], Params]:
    """The record and its validated params, as the run of `epochs` epochs: by default the whole
    run, or, if it was cut short, up to its last scored epoch. Nothing in the schedules depends on
    train.epochs, so the first E epochs of a run are the run of E epochs, and its selection is the
    same if the selected epoch is among them and E was scored (the selection scores the last epoch).
    Refused if a field is missing, a row is malformed, or E cannot be such a cut."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: cannot read the record: {exc}") from None
    missing = [field for field in FIELDS if field not in record]
    if missing:
        raise RecordError(
            f"{path} has no {', '.join(missing)}: record a run of `{TRAINED_BY} --select --json FILE --save FILE`"
        )
    try:
        params = validate(record["params"], source=str(path))
    except ParamsError as exc:
        raise RecordError(str(exc)) from None
    rows = record["rows"]
    for number, row in enumerate(rows, start=1):
        scored = "select.valid_ll" in row
        if row.get("epoch") != number or not all(isinstance(v, (int, float)) for v in row.values()) or (
            scored and not all(f"select.{key}" in row for key in SCORE_KEYS)
        ):
            raise RecordError(f"{path}: row {number} is not epoch {number}'s figures as epoch_time.py writes them")
    scored = [row["epoch"] for row in rows if "select.valid_ll" in row]
    if record["selected_epoch"] not in scored:
        raise RecordError(f"{path}: its selected epoch, {record['selected_epoch']}, is not one of its scored epochs")
    if epochs is None:
        if len(rows) == params.train.epochs:
            return record, params
        if record.get("finished") is False:  # records from before the flag are taken as ended
            raise RecordError(
                f"{path} was written while its run was under way (at epoch {len(rows)} of {params.train.epochs}): "
                f"wait for the run to end, or, if it was killed, record its first E epochs with --epochs E"
            )
        record["planned_epochs"] = params.train.epochs  # ended early (SIGTERM): what it was started for
        epochs = scored[-1]
    if epochs not in scored or epochs < record["selected_epoch"]:
        raise RecordError(
            f"{path}: the run cannot be cut at epoch {epochs}: a cut must be a scored epoch from the selected "
            f"one, {record['selected_epoch']}, to the last scored one, {scored[-1]}"
        )
    record["rows"] = rows[:epochs]
    record["params"]["train"]["epochs"] = epochs
    return record, validate(record["params"], source=f"{path}, cut at epoch {epochs}")


def check_files(record: dict[str, Any], generator: Path, data_root: Path) -> None:
    """The generator is the one the run selected, and the training and validation splits here are
    the ones it trained and selected on (the test split is the Parzen protocol's, as for any run)."""
    if md5_of(generator) != record["generator_md5"]:
        raise RecordError(f"{generator} has md5 {md5_of(generator)}; the record's selected generator has {record['generator_md5']}")
    for split, md5 in record["data_md5"].items():
        here = data_root / "mnist" / f"{split}.pt"
        if not here.is_file():
            raise RecordError(f"no {here}: run `dvc repro download` first")
        if md5_of(here) != md5:
            raise RecordError(f"{here} has md5 {md5_of(here)}; the run trained on {md5}")


class JsonRunLog(TrainingLog):
    """Writes the record to `path` and the selected epoch's generator to `generator` whenever the
    selection keeps a new one, so a run killed outright still leaves both whole. `record`: the
    fields known before training (commit, device, torch, params, data_md5...)."""

    def __init__(self, path: Path | None, generator: Path | None, record: dict[str, Any]):
        self.path, self.generator = path, generator
        self.record = {**record, "started": time.time()}
        self.rows: list[dict[str, float]] = []

    def epoch(self, run: TrainingRun, row: dict[str, float], score: dict[str, float] | None, seconds: dict[str, float]) -> None:
        row = {**row, "epoch_seconds": seconds["epoch"]}
        if score is not None:
            row.update({f"select.{k}": v for k, v in score.items()})
            row["select_seconds"] = seconds["select"]
            best = run.selector.best
            if self.generator and best is not None and best["epoch"] == row["epoch"]:
                write_torch(self.generator, best["generator"])
                self.record.update(selected_epoch=best["epoch"], generator_md5=md5_of(self.generator))
        self.rows.append(row)
        if score is not None:  # with the generator it may have saved, so a run killed still leaves both
            self.write(finished=False)

    def end(self, run: TrainingRun) -> None:
        best = run.selector.best if run.selector is not None else None
        if self.generator and best is not None and self.record.get("selected_epoch") != best["epoch"]:
            write_torch(self.generator, best["generator"])  # selected by the score made after the last epoch
            self.record.update(selected_epoch=best["epoch"], generator_md5=md5_of(self.generator))
        self.write(finished=True)

    def write(self, finished: bool) -> None:
        """finished: the run has ended (all its epochs, or stopped); False while it is under way."""
        if self.path:
            record = {**self.record, "ended": time.time(), "finished": finished, "rows": self.rows}
            write_text(self.path, json.dumps(record, indent=1) + "\n")


def device_record(device: torch.device, name: str) -> dict[str, str]:
    return {"device": name, "torch_device": str(device), "torch": torch.__version__}
