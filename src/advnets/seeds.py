"""The multi-seed summary: the Parzen result of every seed of one configuration, from the MLflow
store (each seed is a `dvc exp run -S train.seed=N`, or a `dvc repro` per seed), into
metrics/seeds.json with the mean and standard deviation across seeds."""

from __future__ import annotations

import statistics
from typing import Any

import mlflow

from advnets import tracking
from advnets.params import Params

# Keys that change no result: where it ran, how often it logged, where the data came from.
NOT_CONFIG = {"train.seed", "train.device", "train.grid_every", "data.mirror", "parzen.chunk_size", "parzen.device"}
SCORE = "parzen.test_ll_mean"


def config_filter(params: Params) -> dict[str, str]:
    """The logged param values a run of this configuration has (any seed)."""
    flat = params.flat("data", "model", "train", "select", "sample", "parzen")
    return {k: v for k, v in tracking.param_strings(flat).items() if k not in NOT_CONFIG}


def seed_runs(params: Params, uri: str) -> list[mlflow.entities.Run]:
    """The newest finished, scored training run of each seed whose params match the config."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        return []
    wanted = config_filter(params)
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.DVC_STAGE = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=5000,
    )
    newest: dict[str, mlflow.entities.Run] = {}
    for run in runs:
        logged = run.data.params
        if SCORE in run.data.metrics and all(logged.get(k) == v for k, v in wanted.items()):
            newest.setdefault(logged["train.seed"], run)
    return sorted(newest.values(), key=lambda run: int(run.data.params["train.seed"]))


def seed_row(run: mlflow.entities.Run) -> dict[str, Any]:
    metrics, tags = run.data.metrics, run.data.tags
    return {
        "seed": int(run.data.params["train.seed"]),
        "test_ll_mean": metrics[SCORE],
        "test_ll_se": metrics.get("parzen.test_ll_se"),
        "selected_epoch": int(metrics["selected_epoch"]) if "selected_epoch" in metrics else None,
        "run_id": run.info.run_id,
        "dvc_experiment": tags.get("DVC_EXP_NAME"),
        "git_commit": tags.get("git.commit"),
        "generator_md5": tags.get(f"{tracking.MD5_TAG}models/generator.pt"),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1) of the seeds' test log-likelihoods."""
    scores = [row["test_ll_mean"] for row in rows]
    return {
        "n_seeds": len(rows),
        "test_ll_mean": statistics.fmean(scores) if scores else None,
        "test_ll_sd": statistics.stdev(scores) if len(scores) > 1 else None,
        "seeds": rows,
    }


def seed_summary(params: Params, uri: str) -> dict[str, Any]:
    return {"config": config_filter(params), **summarise([seed_row(run) for run in seed_runs(params, uri)])}

