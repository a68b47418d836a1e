"""MLflow tracking: the embedded sqlite store at the repository root unless MLFLOW_TRACKING_URI
says otherwise, absolute paths throughout, and the lineage tags every run carries."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import torch
import yaml

from advnets.atomic import write_text


def repo_root() -> Path:
    """Where the stage runs from: $DVC_ROOT under DVC, else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


_uri_set_here: str | None = None  # our default store, once mlflow.set_tracking_uri exported it


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it (not as an earlier call of ours exported it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and uri != _uri_set_here else None


def tracking_uri(root: Path) -> str:
    return user_tracking_uri() or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def use_store(root: Path) -> str:
    """Point MLflow at the project's store (the user's MLFLOW_TRACKING_URI wins); returns its URI."""
    global _uri_set_here
    user = user_tracking_uri()
    uri = user or tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    _uri_set_here = None if user else uri  # a user's URI stays the user's on the next call
    return uri


def experiment_id(name: str, root: Path) -> str:
    """Point MLflow at the store; the experiment's id, created with an absolute artifact folder
    beside our embedded store (a user's own server decides its artifact store itself)."""
    own_store = user_tracking_uri() is None
    use_store(root)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = (root / "mlartifacts").resolve().as_uri() if own_store else None
    return mlflow.create_experiment(name, artifact_location=location)


def git_state(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    return {"git.commit": commit or "unknown", "git.dirty": str(bool(git("status", "--porcelain"))).lower()}


def locked_md5(root: Path, path: str) -> str | None:
    """The md5 dvc.lock records for an output path (a DVC 3 hash: the md5 of the bytes)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    return None


def lineage_tags(root: Path, device: torch.device, data_path: str) -> dict[str, str]:
    tags = {**git_state(root), "torch.version": torch.__version__, "device": str(device)}
    for variable in ("DVC_STAGE", "DVC_EXP_NAME"):
        if os.environ.get(variable):
            tags[variable] = os.environ[variable]
    data_md5 = locked_md5(root, data_path)
    if data_md5:
        tags[f"dvc.md5.{data_path}"] = data_md5
    return tags


def param_strings(flat: dict[str, Any]) -> dict[str, str]:
    """Param values as MLflow stores them (lists as JSON, like the YAML)."""
    return {key: json.dumps(value) if isinstance(value, list) else str(value) for key, value in flat.items()}


def log_flat_params(flat: dict[str, Any]) -> None:
    mlflow.log_params(param_strings(flat))


def write_run_record(path: Path, run: mlflow.ActiveRun, root: Path) -> None:
    """The small output that tells later stages which run to add their results to."""
    record = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "tracking_uri": tracking_uri(root)}
    write_text(path, json.dumps(record, indent=2) + "\n")


def read_run_id(path: str | Path = "models/mlflow-run.json") -> str:
    """The training run named by the record write_run_record left."""
    return json.loads(Path(path).read_text())["run_id"]


def log_to_run(
    run_id: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: list[str | Path],
    folder: str = "parzen",
) -> None:
    """Add a later stage's results to an existing run. A param already logged with another value
    (MLflow params are write-once) is kept, with a warning; metrics and tags take the new values."""
    uri = use_store(repo_root())
    try:
        logged = mlflow.MlflowClient().get_run(run_id).data.params
    except mlflow.exceptions.MlflowException:
        print(f"warning: MLflow run {run_id} is not in {uri}; results not logged there")
        return
    values = param_strings(params)
    for key, value in values.items():
        if key in logged and logged[key] != value:
            print(f"warning: run {run_id} keeps {key}={logged[key]} (now {value}); see the metrics files")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({k: v for k, v in values.items() if k not in logged})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path=folder)
