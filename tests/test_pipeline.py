"""dvc.yaml end to end: stages run under `dvc repro` in a fresh copy of the repository."""

import json
import shutil

import mlflow
from dvc.repo import Repo

from advnets.data import load_mnist
from conftest import REPO, TINY


def test_stages_declare_their_scripts_and_params():
    stages = {stage.name: stage for stage in Repo(str(REPO)).index.stages}
    assert "download" in stages
    for stage in stages.values():
        assert any(str(dep).startswith("stages/") for dep in stage.deps), stage.name


def test_download_stage_prepares_splits_and_a_second_repro_runs_nothing(pipeline):
    pipeline.repro("download")
    assert load_mnist("valid", pipeline.root / "data")[0].shape == (10_000, 784)
    outs = pipeline.lock()["stages"]["download"]["outs"]
    assert [(out["path"], out["nfiles"]) for out in outs] == [("data/mnist", 3)]
    mtime = (pipeline.root / "data" / "mnist" / "train.pt").stat().st_mtime_ns

    second = pipeline.repro("download")
    assert "didn't change, skipping" in second and "Running stage" not in second
    assert (pipeline.root / "data" / "mnist" / "train.pt").stat().st_mtime_ns == mtime


def test_invalid_params_stop_the_stage_with_the_key_named(pipeline):
    pipeline.set_params(data={"valid_size": -5})
    result = pipeline.run_unchecked("dvc", "repro", "download")
    assert result.returncode != 0
    assert "data.valid_size: input should be greater than 0, got -5" in result.stderr + result.stdout
    assert not (pipeline.root / "data" / "mnist").exists()


def test_train_stage_writes_outputs_and_an_mlflow_run(pipeline, empty_mlflow_store):
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**TINY)
    pipeline.repro("train")

    lock = pipeline.lock()["stages"]["train"]
    assert {out["path"] for out in lock["outs"]} >= {"models/generator.pt", "metrics/train.json"}
    assert lock["params"]["params.yaml"]["train"]["epochs"] == 2
    record = json.loads((pipeline.root / "models" / "mlflow-run.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    run = client.get_run(record["run_id"])
    assert run.data.params["train.batches_per_epoch"] == "4"
    assert run.data.tags["DVC_STAGE"] == "train"
    data_md5 = pipeline.lock()["stages"]["download"]["outs"][0]["md5"]
    assert run.data.tags["dvc.md5.data/mnist"] == data_md5
    assert [m.step for m in client.get_metric_history(run.info.run_id, "g_loss")] == [1, 2]
    assert not (pipeline.root / "models" / "checkpoint.pt").exists()

    pipeline.set_params(train={"grid_every": 2})
    assert "Running stage 'train'" in pipeline.repro("train")  # a listed key re-runs the stage
    pipeline.set_params(data={"mirror": "/elsewhere"})
    assert "Running stage" not in pipeline.repro("train")  # an unlisted one does not
