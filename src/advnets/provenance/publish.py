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


# The params that decide a generator's score: which samples are drawn and how they are scored.
SCORE_PARAMS = ("sample.n", "sample.seed", "parzen.sigmas", "parzen.valid_points", "parzen.test_points")
# With the same samples (a sample seed draws the same samples on any machine: they are drawn on the
# CPU), a rescore differs from the published figure by floating-point rounding alone (the distances
# are a float32 GEMM whose summation order varies with the machine): well under this many nats.
ROUNDING_NATS = 0.05


def compare_with_published(generator: Path, test_ll_mean: float, score_params: dict[str, str]) -> tuple[bool | None, str]:
    """Whether a score of `generator` matches the figure its lineage.json publishes: (None, why
    not compared) when there is no lineage.json beside it, it records another generator, or it was
    scored with other samples or protocol params; else (matches, what was compared)."""
    record_path = generator.parent / "lineage.json"
    if not record_path.is_file():
        return None, f"no lineage.json beside {generator}: not a published generator, nothing to compare with"
    record = json.loads(record_path.read_text())
    if md5_of(generator) != record.get("generator_md5"):
        return None, f"{record_path} records another generator (md5 {record.get('generator_md5')}): not compared"
    published = record.get("parzen", {}).get("test_ll_mean")
    if published is None:
        return None, f"{record_path} publishes no Parzen figure: not compared"
    recorded = record.get("params", {})
    differ = [f"{key} {recorded.get(key, 'absent')} there, {score_params[key]} here"
              for key in SCORE_PARAMS if recorded.get(key) != score_params[key]]
    if differ:
        return None, (f"{record_path} publishes {published:.3f}, scored with other samples or protocol "
                      f"({'; '.join(differ)}): not compared; other samples alone move a score by nats "
                      "(sd 1.7 over five sample seeds of one generator: docs/findings.md)")
    difference = test_ll_mean - published
    verdict = "matches" if abs(difference) <= ROUNDING_NATS else "does NOT match"
    return abs(difference) <= ROUNDING_NATS, (
        f"{verdict} the published figure {published:.3f} ({record_path}, run {record.get('run_id')}): difference "
        f"{difference:+.3f} nats with the same {score_params['sample.n']} samples (sample.seed "
        f"{score_params['sample.seed']}), where only floating-point rounding may differ (allowed: {ROUNDING_NATS} nats)"
    )


def alias_published(uri: str, run_id: str, folder: Path, results: Path = RESULTS) -> str:
    """Give the run's registered model version (advnets.provenance.logged_model) the alias of its
    published folder (seed-0, epochs-2000-seed-1), so `models:/advnets-mnist-generator@seed-0`
    loads the published generator; says what it did."""
    from advnets.provenance import logged_model

    client = tracking.client(uri)
    version = logged_model.version_of_run(client, run_id)
    if version is None:
        return f"run {run_id} has no registered model version (trained before advnets registered models): no alias"
    alias = "-".join(folder.relative_to(results).parts)
    client.set_registered_model_alias(logged_model.REGISTERED_NAME, alias, version.version)
    return f"registered model {logged_model.REGISTERED_NAME} version {version.version} now has the alias {alias}"
