"""A training run made outside the pipeline, recorded in the MLflow store as a training run.

`benchmarks/epoch_time.py --select --json RECORD --save GENERATOR` trains with the train stage's
own loop and selection (Trainer, Selector) where DVC and MLflow are not installed, such as a lent
GPU machine. Its record holds the params, commit, device, torch version, the data's md5s, every
epoch's figures and the selected generator's md5. `record_run` checks the generator and the data
against the record, scores the generator on the test set by the Parzen protocol here, and logs
one finished run with what the train and parzen stages log (params, per-epoch metrics, the
selection, the score, the generator as the `model` artifact, the lineage tags), tagged
`trained_by`. `advnets seeds`, `variants`, `publish` and `lineage` then treat it as any training run.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from mlflow.entities import Metric

from advnets.eval import selection
from advnets.eval.scoring import score_generator
from advnets.provenance import repository, tracking
from advnets.provenance.runlog import SCORE_KEYS, TRAINED_BY, RecordError, check_files, load_record

BATCH = 1000  # MLflow takes at most 1000 metrics per log_batch


class Recorded(NamedTuple):
    run_id: str
    summary: dict[str, Any]  # the selection and the test score, as logged
    epochs: int  # the recorded run's length
    planned_epochs: int  # the length the run was started for: more if it ended early (SIGTERM)


def record_run(record_path: Path, generator: Path, root: Path, epochs: int | None = None) -> Recorded:
    """Check, score and log the run (cut at `epochs`, see load_record) in root's MLflow store
    (MLFLOW_TRACKING_URI if set)."""
    record, params = load_record(record_path, epochs)
    check_files(record, generator, root / "data")
    experiment = tracking.experiment_id(params.tracking.experiment, root)  # opens the store
    client = tracking.client()
    generator_tag = f"{tracking.MD5_TAG}models/generator.pt"
    same = client.search_runs(
        [experiment], f"tags.{tracking.TRAINED_BY_TAG} LIKE '%' and tags.`{generator_tag}` = '{record['generator_md5']}'"
    )
    if same:
        raise RecordError(f"{generator} is already recorded, as run {same[0].info.run_id}")

    selected = record["rows"][record["selected_epoch"] - 1]
    score = score_generator(generator, params, root / "data")
    summary = {
        **selection.summary({"epoch": selected["epoch"], **{key: selected[f"select.{key}"] for key in SCORE_KEYS}}),
        "parzen.test_ll_mean": score.test_ll_mean,
        "parzen.test_ll_se": score.test_ll_se,
        "parzen.sigma": score.sigma,
    }
    commit = record["commit"]
    tags = {
        tracking.TRAINED_BY_TAG: TRAINED_BY,
        "git.commit": commit.removesuffix("+changes"),
        "git.dirty": str(commit.endswith("+changes")).lower(),
        "torch.version": record["torch"],
        "device.name": record["device"],
        generator_tag: record["generator_md5"],
    }
    if "torch_device" in record:  # records from before it name only the machine
        tags["device"] = record["torch_device"]
    data_md5 = repository.content_md5(root, "data/mnist")
    if data_md5:
        tags[f"{tracking.MD5_TAG}data/mnist"] = data_md5

    when = {key: int(record[key] * 1000) for key in ("started", "ended") if key in record}  # when it trained
    run = client.create_run(experiment, start_time=when.get("started"), tags=tags)
    run_id, status = run.info.run_id, "FAILED"
    base = f"seed{params.train.seed}-{params.train.update}"
    try:
        client.update_run(run_id, name=tracking.run_name(base, params.train.epochs, run_id, origin="record"))
        client.set_tag(run_id, "mlflow.note.content", (
            f"A training of {params.train.epochs} epochs ({base}) made outside the pipeline by {TRAINED_BY} at git "
            f"commit {commit} on {record['device']}, logged by `advnets record` from its JSON run log; its "
            "`dvc.md5.*` tags hold the md5 of the generator and the data it was checked against."))
        tracking.log_flat_params_to(client, run_id, params.flat("data", "model", "train", "select", "sample", "parzen", "tracking"))
        now = when.get("ended", int(time.time() * 1000))
        metrics = [Metric(k, float(v), now, row["epoch"]) for row in record["rows"] for k, v in row.items() if k != "epoch"]
        metrics += [Metric(k, float(v), now, 0) for k, v in summary.items()]
        for start in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + BATCH])
        with tempfile.TemporaryDirectory() as tmp:  # the artifact's name, as the train stage logs it
            shutil.copyfile(generator, Path(tmp) / "generator.pt")
            client.log_artifact(run_id, str(Path(tmp) / "generator.pt"), artifact_path="model")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status, end_time=when.get("ended") if status == "FINISHED" else None)
    return Recorded(run_id, summary, params.train.epochs, record.get("planned_epochs", params.train.epochs))
