"""dvc.yaml end to end: stages run under `dvc repro` in a fresh copy of the repository."""

import json
import shutil

import mlflow

from advnets.data.mnist import load_mnist
from conftest import REPO, TINY_PIPELINE


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


def test_full_pipeline_with_a_tiny_config(pipeline, empty_mlflow_store):
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.repro()
    root = pipeline.root

    lock = pipeline.lock()["stages"]
    assert {out["path"] for out in lock["train"]["outs"]} >= {"models/generator.pt", "models/mlflow-run.json"}
    assert lock["train"]["params"]["params.yaml"]["train"]["epochs"] == 2
    assert not (root / "models" / "checkpoint.pt").exists()
    parzen = json.loads((root / "metrics" / "parzen.json").read_text())
    assert (parzen["n_samples"], parzen["n_test"]) == (500, 200)
    assert parzen["samples_md5"] == lock["sample"]["outs"][0]["md5"]  # joins MLflow and DVC by content

    record = json.loads((root / "models" / "mlflow-run.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    run = client.get_run(record["run_id"])
    assert run.data.params["train.batches_per_epoch"] == "4"
    assert run.data.tags["DVC_STAGE"] == "train"
    assert run.data.tags["dvc.md5.data/mnist"] == lock["download"]["outs"][0]["md5"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "g_loss")] == [1, 2]
    assert run.data.metrics["parzen.test_ll_mean"] == parzen["test_ll_mean"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} >= {"figures/figure2.png"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == ["report/results.md"]
    (toy_run,) = client.search_runs([run.info.experiment_id], "attributes.run_name = 'toy-1d'")
    assert "g_at_step_0.max_abs_d_minus_d_star" in toy_run.data.metrics
    assert {a.path for a in client.list_artifacts(toy_run.info.run_id, "figures")} == {
        "figures/figure1.png", "figures/toy_jsd.png"}

    for name in ("figure1", "figure2", "figure3", "training_curves", "parzen_sigmas", "toy_jsd"):
        assert (root / "figures" / f"{name}.png").stat().st_size > 1000, name
    results = (root / "metrics" / "results.md").read_text()
    assert f"{parzen['test_ll_mean']:.1f} ± {parzen['test_ll_se']:.1f}" in results
    assert "| Adversarial nets | 225 ± 2 | paper |" in results

    pipeline.set_params(parzen={"test_points": 100})
    rerun = pipeline.repro()
    assert "Running stage 'parzen'" in rerun and "Running stage 'train'" not in rerun
    pipeline.set_params(data={"mirror": "/elsewhere"})  # read, but changes no output
    assert "Running stage" not in pipeline.repro()
    pipeline.set_params(train={"seed": 1})  # each stage lists only the params it reads
    status = json.loads(pipeline.run("dvc", "status", "--json").stdout)
    stale = {stage: changes for stage, changes in status.items() if ":" not in stage}  # the root's stages
    assert set(stale) == {"train", "report"}  # not toy: its model and seed are its own
    assert {"changed deps": {"params.yaml": {"train": "modified"}}} in stale["train"]  # it lists the section


def test_the_report_reruns_on_the_committed_metrics_without_a_model(pipeline):
    """After `advnets seeds` or `advnets variants` in a checkout that has the committed metrics
    but no trained model (main), `dvc repro -s report` rewrites the report from them alone."""
    for name in ("train", "parzen", "toy"):
        shutil.copy2(REPO / "metrics" / f"{name}.json", pipeline.root / "metrics")
    assert not (pipeline.root / "models").exists()
    out = pipeline.repro("-s", "report")
    assert "no training run record at models/mlflow-run.json; report results not logged" in out
    # the committed report is the one the committed metrics and params.yaml make
    assert (pipeline.root / "metrics" / "results.md").read_text() == (REPO / "metrics" / "results.md").read_text()
