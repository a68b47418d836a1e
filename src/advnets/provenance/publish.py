"""Published weights: a training run's selected generator copied into the repository
(results/mnist/seed-N/generator.pt, or results/mnist/VARIANT/seed-N/ for a variant of params.yaml's
configuration) beside the lineage it was made with, so anyone can score it without retraining and
without our MLflow store (`evaluate.score_generator` scores such a file)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow

from advnets.atomic import atomic_path, md5_of, write_text
from advnets.errors import AdvnetsError
from advnets.provenance import tracking

GENERATOR = "models/generator.pt"
RESULTS = Path("results/mnist")


class PublishError(AdvnetsError):
    """The run is not a finished, scored training run, or its artifact does not match its tags."""


VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def published_dir(seed: int, results: Path = RESULTS, variant: str | None = None) -> Path:
    if variant is None:
        return results / f"seed-{seed}"
    if not VARIANT_NAME.fullmatch(variant) or variant.startswith("seed-"):
        raise PublishError(
            f"variant name {variant!r}: use lower-case letters, digits, '.', '_' and '-' (e.g. epochs-1000), "
            "not starting with 'seed-'"
        )
    return results / variant / f"seed-{seed}"


def publish(run_id: str, uri: str, results: Path = RESULTS, force: bool = False, variant: str | None = None) -> Path:
    """Copy the run's generator artifact, verified against the md5 the run recorded, into
    results/mnist/[VARIANT/]seed-N/ with lineage.json; returns that folder. Another run's
    published folder is replaced only with force."""
    client = tracking.client(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise PublishError(f"run {run_id} is not in {uri}") from None
    tags, metrics = run.data.tags, run.data.metrics
    if not tracking.is_training_run(tags) or run.info.status != "FINISHED":
        raise PublishError(f"run {run_id} is not a finished training run (stage {tags.get('DVC_STAGE')}, {run.info.status})")
    if "parzen.test_ll_mean" not in metrics:
        raise PublishError(f"run {run_id} has no Parzen score yet: run the parzen stage for it first")
    recorded = tags.get(f"{tracking.MD5_TAG}{GENERATOR}")
    if recorded is None:
        raise PublishError(f"run {run_id} recorded no md5 for {GENERATOR}: it predates lineage tags")
    folder = published_dir(int(run.data.params["train.seed"]), results, variant)
    if (folder / "lineage.json").is_file() and not force:
        previous = json.loads((folder / "lineage.json").read_text())["run_id"]
        if previous != run_id:
            raise PublishError(f"{folder} holds run {previous}; pass --force to replace it with run {run_id}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            artifact = Path(client.download_artifacts(run_id, f"model/{Path(GENERATOR).name}", tmp))
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise PublishError(f"run {run_id}: cannot read its generator artifact: {exc}") from None
        if md5_of(artifact) != recorded:
            raise PublishError(f"run {run_id}'s generator artifact has md5 {md5_of(artifact)}, its tag records {recorded}")
        with atomic_path(folder / "generator.pt") as target:
            shutil.copyfile(artifact, target)
    write_text(folder / "lineage.json", json.dumps(run_lineage_record(run), indent=2) + "\n")
    return folder


def run_lineage_record(run: mlflow.entities.Run) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    return {
        "generator_md5": tags.get(f"{tracking.MD5_TAG}{GENERATOR}"),
        "run_id": run.info.run_id,
        "git_commit": tags.get("git.commit"),
        "git_dirty": tags.get("git.dirty"),
        "dvc_experiment": tags.get("DVC_EXP_NAME"),
        "trained_by": tags.get(tracking.TRAINED_BY_TAG),  # set when trained outside the pipeline
        "device": tags.get("device"),
        "torch_version": tags.get("torch.version"),
        "resumes": tracking.resumes(tags),  # what changed at each resume: the lineage above is the last session's
        "selected_epoch": int(metrics["selected_epoch"]) if "selected_epoch" in metrics else None,
        "parzen": {k.removeprefix("parzen."): v for k, v in metrics.items() if k.startswith("parzen.")},
        "files": recorded_files(tags),
        "params": dict(sorted(run.data.params.items())),
    }


def published(root: Path, results: Path = RESULTS) -> list[Path]:
    """The published generators under root: params.yaml's seeds, then each variant's."""
    return sorted((root / results).glob("seed-*/generator.pt")) + sorted((root / results).glob("*/seed-*/generator.pt"))


def recorded_files(tags: dict[str, str]) -> dict[str, str]:
    """The files a run recorded, {path: md5}, from its dvc.md5.<path> tags."""
    return {k.removeprefix(tracking.MD5_TAG): v for k, v in sorted(tags.items()) if k.startswith(tracking.MD5_TAG)}
