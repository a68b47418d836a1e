"""dvc.yaml end to end: stages run under `dvc repro` in a fresh copy of the repository."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import torch

from advnets.data.mnist import load_mnist
from advnets.gan.nets import sample_noise
from advnets.gan.sampling import load_generator
from advnets.params import load_params
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
    assert run.info.run_name == f"repro-seed0-simultaneous-2ep-{run.info.run_id[:6]}"
    assert "made by the `train` stage under `dvc repro` at git commit" in run.data.tags["mlflow.note.content"]
    assert run.data.tags["dvc.md5.data/mnist"] == lock["download"]["outs"][0]["md5"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "g_loss")] == [1, 2]
    assert run.data.metrics["parzen.test_ll_mean"] == parzen["test_ll_mean"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "figures")} >= {"figures/figure2.png"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == ["report/results.md"]
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert_the_generator_is_a_registered_model(root, client, run)
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
    ran = [line for line in pipeline.repro().splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'validate':"]  # it checks the whole file after any edit
    pipeline.set_params(train={"seed": 1})  # each stage lists only the params it reads
    status = json.loads(pipeline.run("dvc", "status", "--json").stdout)
    stale = {stage: changes for stage, changes in status.items() if ":" not in stage}  # the root's stages
    assert set(stale) == {"validate", "train", "report"}  # not toy: its model and seed are its own
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


def test_ctrl_c_during_training_says_what_was_kept_marks_the_run_killed_and_dvc_repro_resumes(pipeline, empty_mlflow_store):
    """Ctrl-C reaches every process of the terminal's foreground group: DVC waits for its stage,
    which must end with one line (no traceback), its MLflow run KILLED and its checkpoint kept."""
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**{**TINY_PIPELINE, "train": {**TINY_PIPELINE["train"], "epochs": 5000, "grid_every": 10_000},
                           "select": {**TINY_PIPELINE["select"], "every": 1000}})
    pipeline.repro("download")
    checkpoint = pipeline.root / "models" / "checkpoint.pt"
    repro = subprocess.Popen(["dvc", "repro", "train"], cwd=pipeline.root, env=pipeline.env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert repro.poll() is None and time.monotonic() < deadline, repro.communicate()[0]
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(repro.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    output = repro.communicate(timeout=120)[0]
    assert repro.returncode != 0
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert ("train: interrupted; its outputs are those of the last finished training; `dvc repro` resumes from the "
            "last epoch it checkpointed, if it finished one") in output
    assert checkpoint.exists()
    assert not (pipeline.root / "models" / "mlflow-run.json").exists()  # an output: only a finished training's
    assert not (pipeline.root / "metrics" / "train.json").exists()
    saved = torch.load(checkpoint, weights_only=True)
    run_id, done = saved["run_id"], len(saved["history"])  # the run it continues, the epochs it holds
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "KILLED"

    pipeline.set_params(train={"epochs": done + 1})  # a changed length continues the same run
    resumed = pipeline.repro("train")
    assert "resuming from models/checkpoint.pt after epoch" in resumed
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["train.epochs"] == str(done + 1)
    assert [m.step for m in client.get_metric_history(run_id, "d_loss")] == list(range(1, done + 2))
    assert not checkpoint.exists()


LOAD_AND_PREDICT = """
import json, sys
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
print(json.dumps({"inputs": model.metadata.get_input_schema().to_dict(),
                  "outputs": model.metadata.get_output_schema().to_dict()}))
"""


def assert_the_generator_is_a_registered_model(root, client, run):
    """The selected G is logged as an MLflow model (signature, example, requirements) and registered:
    mlflow.pyfunc.load_model in a fresh process, elsewhere, gives G's output for the same noise."""
    (version,) = client.search_model_versions("name = 'advnets-mnist-generator'")
    assert version.run_id == run.info.run_id and version.tags["git.commit"] == run.data.tags["git.commit"]
    params = load_params(root / "params.yaml")
    z = sample_noise(7, params.model, generator=torch.Generator().manual_seed(3))
    np.save(root.parent / "z.npy", z.numpy())
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, f"models:/advnets-mnist-generator/{version.version}",
                           str(root.parent / "z.npy"), str(root.parent / "images.npy")],
                          cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout.splitlines()[-1])
    assert schema["inputs"][0]["tensor-spec"] == {"dtype": "float32", "shape": [-1, 100]}
    assert schema["outputs"][0]["tensor-spec"] == {"dtype": "float32", "shape": [-1, 784]}
    with torch.no_grad():
        expected = load_generator(root / "models" / "generator.pt", params.model)(z).numpy()
    np.testing.assert_allclose(np.load(root.parent / "images.npy"), expected, rtol=0, atol=1e-6)


def test_a_training_killed_before_its_first_checkpoint_leaves_no_run_running(pipeline, empty_mlflow_store):
    """kill -9 gives a process no chance to end its MLflow run: the next stage to open the
    experiment sees its process gone and marks the run KILLED."""
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**{**TINY_PIPELINE, "train": {**TINY_PIPELINE["train"], "epochs": 50, "batches_per_epoch": None}})
    pipeline.repro("download")
    models = pipeline.root / "models"
    repro = subprocess.Popen(["dvc", "repro", "train"], cwd=pipeline.root, env=pipeline.env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (staged := list(models.glob(".stage.*/mlflow-run.json"))):  # the record, held back with the outputs
        assert repro.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait(timeout=60)
    killed = json.loads(staged[0].read_text())["run_id"]
    assert not (models / "mlflow-run.json").exists()
    client = mlflow.MlflowClient(f"sqlite:///{pipeline.root / 'mlflow.db'}")
    assert client.get_run(killed).info.status == "RUNNING"  # what kill -9 leaves
    (pipeline.root / "models" / "checkpoint.pt").unlink(missing_ok=True)  # killed before it, as the test says

    pipeline.set_params(train={"epochs": 1, "batches_per_epoch": 4})
    rerun = pipeline.repro("train")
    assert f"MLflow run {killed} " in rerun and "marked KILLED" in rerun
    assert client.get_run(killed).info.status == "KILLED"
    assert not client.search_runs([client.get_run(killed).info.experiment_id], "attributes.status = 'RUNNING'")
    assert not list(models.glob(".*"))  # the killed process's staging folder is gone
