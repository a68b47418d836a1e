"""The paper's other datasets: their params, nets and training, and each pipeline end to end on
fixtures written by the tests in the real formats (a CIFAR-10 archive, a TFD .mat)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from advnets.atomic import md5_of
from advnets.params import read_yaml
from conftest import GIT_USER, REPO, TINY_PIPELINE
from fakes import write_archive, write_mat

# ---- the pipelines end to end, on tiny nets ----


def tiny_gan(section: dict, hidden: list[int], **model) -> None:
    section["model"].update(g_hidden=hidden, g_activations=section["model"]["g_activations"][-len(hidden):],
                            g_hidden_biases=section["model"]["g_hidden_biases"][-len(hidden):], d_units=[8], d_pieces=2, **model)
    section["train"].update(epochs=2, batches_per_epoch=2, grid_every=1)


def write_params(root: Path, raw: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def run_names(root: Path, experiment: str) -> list[str]:
    """The experiment's run names, a training run's by its base (tfd-seed0) also where it is named
    for its origin, length and id too (repro-tfd-seed0-2ep-1a2b3c)."""
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return sorted(re.sub(r"^repro-(.+)-\d+ep-[0-9a-f]{6}$", r"\1", run.info.run_name) for run in runs)


def test_cifar10_pipeline_end_to_end(pipeline, empty_mlflow_store):
    root = pipeline.root
    here = root / "pipelines" / "cifar10"  # a DVC repository of its own: its outputs are here
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    raw = read_yaml(root / "params.yaml")
    tiny_gan(raw["cifar10"]["fc"], [16, 16])
    conv_layer = {"channels": 2, "pieces": 2, "kernel": 8, "pad": 4, "pool": 4, "pool_stride": 2}
    tiny_gan(raw["cifar10"]["conv"], [8, 8000], d_conv=[conv_layer])
    for gan in ("fc", "conv"):
        raw["cifar10"][gan]["train"]["batch_size"] = 6
        raw["cifar10"][gan]["sample"]["n"] = 30
    write_params(root, raw)
    # The real download checks torchvision's md5s, which a fixture cannot have: prepare the fixture
    # with its own and let DVC record the stage as done.
    md5s = write_archive(root / "mirror")
    # The stage itself, on the mirror: it checks the batch files against the real md5s and refuses
    # these in one line, leaving no output behind.
    stage = subprocess.run([sys.executable, "../../stages/download.py", "cifar10"], cwd=here, capture_output=True, text=True,
                           env={**pipeline.env, "ADVNETS_CIFAR10_MIRROR": str(root / "mirror")})
    assert stage.returncode == 1
    assert stage.stderr.strip().splitlines()[-1].startswith("download: error: data_batch_1: corrupt or wrong file: md5 expected c99cafc1")
    assert not (here / "data" / "cifar10").exists()
    from advnets.data.cifar10 import prepare_cifar10

    prepare_cifar10(here / "data" / "cifar10", root / "mirror", expected_md5=md5s)
    pipeline.run("dvc", "--cd", "pipelines/cifar10", "commit", "-f", "download")
    pipeline.run("dvc", "--cd", "pipelines/cifar10", "repro")

    lock = yaml.safe_load((here / "dvc.lock").read_text())["stages"]
    assert {"train@fc", "train@conv", "sample@fc", "sample@conv", "figures@fc", "figures@conv"} <= set(lock)
    assert lock["train@conv"]["params"]["params.yaml"]["cifar10.conv.train"]["batch_size"] == 6
    for gan in ("fc", "conv"):
        samples = np.load(here / "data" / "samples" / f"cifar10_{gan}.npy")
        assert samples.shape == (30, 3072)
        figure = here / "figures" / f"cifar10_{gan}" / "figure2.png"
        assert figure.stat().st_size > 1000
        record = json.loads((here / "models" / f"cifar10_{gan}" / "mlflow-run.json").read_text())
        run = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(record["run_id"])
        assert run.data.tags["DVC_STAGE"] == f"train@{gan}"
        # the code it loaded, by path from the project root (it lies outside the pipeline's folder)
        assert run.data.tags["dvc.md5.src/advnets/gan/nets.py"] == md5_of(REPO / "src" / "advnets" / "gan" / "nets.py")
        assert run.data.tags["dvc.md5.stages/train.py"] == md5_of(REPO / "stages" / "train.py")
        data_dep = next(dep for dep in lock[f"train@{gan}"]["deps"] if dep["path"] == "data/cifar10")
        assert run.data.tags["dvc.md5.data/cifar10"] == data_dep["md5"]
        assert run.data.params[f"cifar10.{gan}.train.batch_size"] == "6"
        assert run.data.params[f"cifar10.{gan}.tracking.experiment"] == f"advnets-cifar10-{gan}"
        assert run.data.params["cifar10.data.mirror"] == "None" and "cifar10.data.train_size" not in run.data.params
        assert run.inputs.dataset_inputs[0].dataset.digest == data_dep["md5"]  # the data's md5 in dvc.lock
    assert run_names(root, "advnets-cifar10-conv") == ["cifar10_conv-seed0", "figures@conv", "sample@conv"]
    assert "Running stage" not in pipeline.run("dvc", "--cd", "pipelines/cifar10", "repro").stdout
    lineage = pipeline.run("advnets", "lineage", "--pipeline", "pipelines/cifar10").stdout
    assert "OK: the files, dvc.lock and MLflow agree" in lineage
    assert "models/cifar10_conv/generator.pt" in lineage and "train@conv" in lineage
    assert not (root / "data" / "mnist").exists()  # the MNIST pipeline did not run
    assert not (here / "mlflow.db").exists()  # the runs are in the root's store
    assert "pipelines/" not in pipeline.run("dvc", "status").stdout  # the root's DVC skips it


def test_tfd_pipeline_end_to_end_and_a_missing_file_says_how_to_get_it(pipeline, empty_mlflow_store):
    root = pipeline.root
    here = root / "pipelines" / "tfd"  # a DVC repository of its own: its outputs are here
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    raw = read_yaml(root / "params.yaml")
    raw["tfd"]["data"]["mat_path"] = "private/TFD_48x48.mat"  # relative to pipelines/tfd, where its stages run
    tiny_gan(raw["tfd"]["pretrain"], [16, 120], g_output_sparse=10)
    tiny_gan(raw["tfd"], [16])
    for section in (raw["tfd"]["pretrain"], raw["tfd"]):
        section["train"].update(batch_size=10, monitor_samples=10)
    raw["tfd"]["sample"]["n"] = 40
    write_params(root, raw)

    missing = pipeline.run_unchecked("dvc", "--cd", "pipelines/tfd", "repro")
    assert missing.returncode != 0
    assert "TFD is licensed and not publicly downloadable" in missing.stdout + missing.stderr

    (here / "private").mkdir()
    write_mat(here / "private" / "TFD_48x48.mat", **fixture_fields(200))
    pipeline.run("dvc", "--cd", "pipelines/tfd", "repro")
    parzen = json.loads((here / "metrics" / "tfd" / "parzen.json").read_text())
    assert parzen["n_folds"] == 5 and parzen["n_samples"] == 40
    fold_means = torch.tensor([fold["test_ll_mean"] for fold in parzen["folds"]], dtype=torch.float64)
    assert parzen["test_ll_mean"] == pytest.approx(fold_means.mean().item())
    assert parzen["test_ll_se"] == pytest.approx((fold_means.std(correction=0) / 5**0.5).item())
    assert (here / "figures" / "tfd" / "figure2.png").stat().st_size > 1000
    record = json.loads((here / "models" / "tfd" / "mlflow-run.json").read_text())
    run = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(record["run_id"])
    first = here / "models" / "tfd_pretrain" / "generator.pt"

    assert run.data.params["tfd.pretrained_md5"] == md5_of(first)
    assert (run.data.params["tfd.data.fold"], run.data.params["tfd.data.mat_path"]) == ("0", "private/TFD_48x48.mat")
    assert run.data.metrics["parzen.test_ll_mean"] == pytest.approx(parzen["test_ll_mean"])
    assert run_names(root, "advnets-tfd") == ["figures", "parzen", "sample", "tfd-seed0", "tfd_pretrain-seed0"]
    assert run.data.tags["dvc.md5.models/tfd_pretrain/generator.pt"] == md5_of(first)  # paths from pipelines/tfd
    assert not (here / "mlflow.db").exists()  # the runs are in the root's store

    assert "OK: the files, dvc.lock and MLflow agree" in pipeline.run("advnets", "lineage", "--pipeline", "pipelines/tfd").stdout
    raw["tfd"]["parzen"]["folds"] = [0, 1]
    write_params(root, raw)
    stale = pipeline.run_unchecked("advnets", "lineage", "--pipeline", "pipelines/tfd")
    assert stale.returncode == 1
    assert "params.yaml: tfd.parzen.folds is [0, 1] but stage parzen ran with [0, 1, 2, 3, 4]" in stale.stdout


def test_the_other_pipelines_unrun_leave_mnists_dvc_commands_quiet(pipeline, empty_mlflow_store):
    """Each of the other datasets' pipelines is a DVC repository of its own (pipelines/<dataset>/.dvc),
    which the root's DVC skips: never run, they add nothing to an MNIST experiment's run, status,
    metrics or plots, and applying the experiment checks out MNIST's outputs alone."""
    root = pipeline.root
    assert (root / "pipelines" / "cifar10" / "dvc.yaml").is_file() and (root / "pipelines" / "tfd" / "dvc.yaml").is_file()
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.repro()  # MNIST's run, committed with its dvc.lock as main's is
    pipeline.run("git", "add", "-A")
    pipeline.run("git", *GIT_USER, "commit", "-qm", "tiny pipeline")

    ran = pipeline.run("dvc", "exp", "run", "-n", "tiny", "-S", "train.seed=1")
    assert "No file hash info" not in ran.stdout + ran.stderr
    assert not list((root / "pipelines").glob("*/dvc.lock"))  # the other pipelines did not run
    status = pipeline.run("dvc", "status")
    assert "pipelines/" not in status.stdout + status.stderr
    for command in (("metrics", "show"), ("metrics", "diff"), ("plots", "show", "--json")):
        shown = pipeline.run("dvc", *command)
        assert "failed to load" not in (shown.stdout + shown.stderr).lower(), command
    applied = pipeline.run_unchecked("dvc", "exp", "apply", "tiny")
    assert applied.returncode == 0, applied.stdout + applied.stderr


def fixture_fields(n: int) -> dict:
    """n varied faces: random pixels, fold f gives image i the role (i + f) % 4."""
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        "folds": np.array([[(i + f) % 4 for f in range(5)] for i in range(n)], dtype=np.uint8),
        "labs_ex": np.full((n, 1), -1, dtype=np.int16),
        "labs_id": np.zeros((n, 1), dtype=np.int32),
    }
