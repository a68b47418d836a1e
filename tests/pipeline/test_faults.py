"""The fault suite (docs/training.md, "Faults"): bad params, real kills (SIGKILL, what `kill -9` or a
power cut does) at several points of training, of the download and of the Parzen evaluation, a full
disk, broken MLflow stores, and four trainings sharing one sqlite store. Each test asserts what is
left: the outputs (the last good ones, intact), the leftovers (none) and the MLflow runs (none left
RUNNING)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from advnets.atomic import md5_of
from conftest import GIT_USER, TINY_PIPELINE, PipelineCopy

KILL_HOOK = Path(__file__).parent / "kill_hook"  # its sitecustomize.py kills a stage where told
RESULT_FOLDERS = ("data", "models", "metrics", "figures")


def results(repo: PipelineCopy) -> dict[str, str]:
    """The md5 of every output file (not a checkpoint, nor what `litter` lists)."""
    return {path.relative_to(repo.root).as_posix(): md5_of(path)
            for folder in RESULT_FOLDERS for path in sorted((repo.root / folder).rglob("*"))
            if path.is_file() and path.name != "checkpoint.pt"
            and not any(part.startswith(".") for part in path.relative_to(repo.root).parts)}


def litter(repo: PipelineCopy) -> list[str]:
    """Temporary files, scratch and staging folders, anywhere a stage writes."""
    return [path.relative_to(repo.root).as_posix() for folder in RESULT_FOLDERS
            for path in (repo.root / folder).rglob(".*")]


def store(repo: PipelineCopy) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")


def runs(repo: PipelineCopy, status: str | None = None) -> list:
    client = store(repo)
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, max_results=1000)
    return [run for run in found if status is None or run.info.status == status]


def outputs_match_the_lock(repo: PipelineCopy) -> None:
    """Every output file is what dvc.lock records, and `dvc checkout` (no --force) of the stages
    that ran has nothing to say."""
    checkout = repo.run_unchecked("dvc", "checkout", *repo.lock()["stages"])
    assert checkout.returncode == 0, checkout.stdout + checkout.stderr
    for stage in repo.lock()["stages"].values():
        for out in stage.get("outs", []):
            path = repo.root / out["path"]
            if not out["md5"].endswith(".dir"):
                assert md5_of(path) == out["md5"], out["path"]


def killed_at(repo: PipelineCopy, stage: str, at: str, *targets: str) -> subprocess.CompletedProcess:
    """`dvc repro targets` with the stage script killed (SIGKILL) where `at` says (kill_hook)."""
    env = {**repo.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(KILL_HOOK), repo.env.get("PYTHONPATH")])),
           "ADVNETS_TEST_KILL_STAGE": f"stages/{stage}.py", "ADVNETS_TEST_KILL_AT": at}
    result = subprocess.run(["dvc", "repro", *targets], cwd=repo.root, env=env, capture_output=True, text=True)
    assert result.returncode != 0, result.stdout + result.stderr
    return result


@pytest.fixture
def trained(pipeline: PipelineCopy, empty_mlflow_store) -> PipelineCopy:
    """A tiny pipeline trained and committed: the last good results."""
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.repro("train")
    pipeline.run("git", "add", "-A")
    pipeline.run("git", *GIT_USER, "commit", "-qm", "trained")
    return pipeline


def edit_params(repo: PipelineCopy, edit) -> None:
    path = repo.root / "params.yaml"
    path.write_text(edit(path.read_text()))


def structured(section: str, key: str, value):
    def edit(text: str) -> str:
        raw = yaml.safe_load(text)
        raw[section][key] = value
        return yaml.safe_dump(raw, sort_keys=False)

    return edit


BAD_PARAMS = {  # what a user may write, and the key the refusal must name
    "an unknown top-level key": (lambda text: text + "extras:\n  lr: 0.1\n", "extras"),
    "an unknown key in a section": (structured("train", "learning_rate", 0.1), "train.learning_rate"),
    "a duplicate key": (lambda text: text.replace("\n  lr: 0.1\n", "\n  lr: 0.1\n  lr: 0.2\n", 1), "lr"),
    "an infinite learning rate": (structured("train", "lr", float("inf")), "train.lr"),
    "a NaN momentum": (structured("train", "momentum_end", float("nan")), "train.momentum_end"),
    "lr_min above lr": (structured("train", "lr_min", 0.5), "train.lr_min"),
    "more test points than MNIST has": (structured("parzen", "test_points", 20000), "parzen.test_points"),
    "a negative size": (structured("data", "valid_size", -5), "data.valid_size"),
    "a string for a number": (structured("train", "epochs", "many"), "train.epochs"),
    "an unknown choice": (structured("train", "update", "sometimes"), "train.update"),
}


def test_bad_params_are_refused_before_any_compute_and_nothing_is_lost(trained):
    before, text = results(trained), (trained.root / "params.yaml").read_text()
    for what, (edit, key) in BAD_PARAMS.items():
        edit_params(trained, edit)
        refused = trained.run_unchecked("dvc", "repro")
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, what
        assert key in output and "Traceback" not in output, (what, output)
        assert "epoch 1/" not in output, what
        assert results(trained) == before, what  # nothing removed, nothing rewritten
        (trained.root / "params.yaml").write_text(text)  # DVC itself reads no params file with a duplicate key
        outputs_match_the_lock(trained)
    assert not litter(trained)


KILL_POINTS = {
    # where the train stage dies: (kill_hook's point, what the rerun must say)
    "before the first checkpoint": ("replace:checkpoint.pt:1", None),
    "during a checkpoint write": ("replace:checkpoint.pt:2", "resuming from models/checkpoint.pt after epoch 1"),
    "after training, before DVC recorded it": ("exit", "not training again"),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_training_killed_anywhere_loses_no_result_and_leaves_nothing(trained, point):
    at, rerun_says = KILL_POINTS[point]
    before = results(trained)
    trained.set_params(train={"seed": 1})
    killed_at(trained, "train", at, "train")
    if point != "after training, before DVC recorded it":
        assert results(trained) == before  # the last good outputs, metrics included
        outputs_match_the_lock(trained)
    else:
        assert results(trained) != before  # the new ones, all in place; dvc.lock does not know them yet

    rerun = trained.repro("train")
    if rerun_says:
        assert rerun_says in rerun, rerun
    else:
        assert "resuming" not in rerun and "not training again" not in rerun
    assert not litter(trained)
    assert not runs(trained, "RUNNING")
    seed1 = [run for run in runs(trained) if run.data.params.get("train.seed") == "1" and run.data.tags.get("DVC_STAGE") == "train"]
    assert len([run for run in seed1 if run.info.status == "FINISHED"]) == 1  # trained once, not again
    outputs_match_the_lock(trained)
    assert trained.run("dvc", "status", "train").stdout.strip() == "Data and pipelines are up to date."


def test_a_download_killed_keeps_the_data_there_and_its_scratch_goes(pipeline):
    pipeline.repro("download")
    before = results(pipeline)
    pipeline.set_params(data={"train_size": 40000})
    killed_at(pipeline, "download", "replace:mnist:1", "download")  # unpacked in full, not yet in place
    assert results(pipeline) == before
    assert litter(pipeline)  # the scratch and staging folders of the killed process ...
    pipeline.repro("download")
    assert not litter(pipeline)  # ... go with the next run
    assert results(pipeline) != before


def test_a_parzen_evaluation_killed_while_it_logs_leaves_no_run_running(trained):
    trained.repro("parzen")
    before = results(trained)
    trained.set_params(parzen={"test_points": 150})
    killed_at(trained, "parzen", "copy:parzen.json", "parzen")  # as MLflow stores the metrics file
    assert runs(trained, "RUNNING")  # what kill -9 leaves: the nested parzen run, open
    assert results(trained) == before
    rerun = trained.repro("parzen")
    assert "marked KILLED" in rerun
    assert not runs(trained, "RUNNING") and not litter(trained)
    assert json.loads((trained.root / "metrics" / "parzen.json").read_text())["n_test"] == 150


@contextlib.contextmanager
def small_disk(folder: Path, size: str, options: str = ""):
    """A tmpfs of `size` mounted on folder (root only): a disk that fills."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("mount") is None, reason="needs Linux's mount")
@pytest.mark.parametrize(("stage", "folder", "size"), [("download", "data", "2m"), ("train", "models", "64k")])
def test_a_full_disk_is_named_with_the_file_and_the_space_left(pipeline, empty_mlflow_store, stage, folder, size):
    shutil.copy(empty_mlflow_store, pipeline.root / "mlflow.db")
    pipeline.set_params(**TINY_PIPELINE)
    if stage == "train":
        pipeline.repro("download")
    with small_disk(pipeline.root / folder, size):
        failed = pipeline.run_unchecked("dvc", "repro", stage)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        line = next(line for line in output.splitlines() if line.startswith(f"{stage}: error: "))
        assert "no space left to write " in line and " free on its device" in line, output
        assert "Traceback" not in output and "corrupt" not in output, output
        assert not litter(pipeline) and not runs(pipeline, "RUNNING")
        leftover = [p.name for p in (pipeline.root / folder).iterdir()]
    assert leftover in ([], ["checkpoint.pt"])  # at most the checkpoint of a finished epoch


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("mount") is None, reason="needs Linux's mount")
def test_an_output_folder_that_cannot_be_written_is_named_in_one_line(trained):
    """Read-only for everyone, root included (the tests may run as root, whom permissions do not stop)."""
    before = results(trained)
    with small_disk(trained.root / "figures", "1m", ",ro"):
        failed = trained.run_unchecked("dvc", "repro", "figures")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "figures: error: Read-only file system: " in output and "Traceback" not in output, output
    assert {k: v for k, v in results(trained).items() if k in before} == before
    assert not litter(trained) and not runs(trained, "RUNNING")


def broken_store(kind: str, repo: PipelineCopy, good: Path) -> str:
    """A tracking URI whose store fails as `kind` says."""
    path = repo.root / "broken.db"
    if kind == "garbage":
        path.write_bytes(os.urandom(64 * 1024))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "read-only":
        shutil.copy(good, path)
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    elif kind == "unreachable":
        return "http://127.0.0.1:9"
    return f"sqlite:///{path}"


@pytest.mark.parametrize("kind", ["garbage", "truncated", "read-only", "unreachable"])
def test_a_broken_store_fails_the_stage_in_one_line_before_any_epoch(trained, empty_mlflow_store, kind):
    before = results(trained)
    trained.set_params(train={"seed": 1})
    trained.env["MLFLOW_TRACKING_URI"] = broken_store(kind, trained, empty_mlflow_store)
    failed = trained.run_unchecked("dvc", "repro", "train")
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "train: error: the MLflow store at " in output and "Traceback" not in output, output
    assert "epoch 1/" not in output
    if kind == "unreachable":
        assert "gave up after 2 retries of 10 s each" in output
    assert results(trained) == before and not litter(trained)


def test_four_trainings_share_one_sqlite_store_and_lose_no_metric_step(tmp_path, mnist_mirror, empty_mlflow_store):
    epochs, shared = 6, tmp_path / "shared.db"
    shutil.copy(empty_mlflow_store, shared)
    repos = []
    for n in range(4):
        (tmp_path / f"r{n}").mkdir()
        repo = PipelineCopy(tmp_path / f"r{n}", mnist_mirror)
        repo.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{shared}"
        repo.set_params(**TINY_PIPELINE)
        repo.set_params(train={"seed": 100 + n, "epochs": epochs}, tracking={"experiment": "advnets-concurrency"})
        if n == 0:
            repo.repro("download")
        else:
            shutil.copytree(repos[0].root / "data" / "mnist", repo.root / "data" / "mnist")
        repos.append(repo)
    trainings = [subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo.root, env=repo.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for repo in repos]
    outputs = [training.communicate(timeout=600)[0] for training in trainings]
    assert [training.returncode for training in trainings] == [0] * 4, [output[-1500:] for output in outputs]

    client = mlflow.MlflowClient(f"sqlite:///{shared}")
    experiment = client.get_experiment_by_name("advnets-concurrency").experiment_id
    found = client.search_runs([experiment], "tags.DVC_STAGE = 'train'")
    assert len(found) == 4 and {run.info.status for run in found} == {"FINISHED"}
    keys = ("d_loss", "g_loss", "d_real", "d_fake", "valid_parzen", "lr", "momentum")
    steps = {(run.info.run_id, key): [m.step for m in client.get_metric_history(run.info.run_id, key)]
             for run in found for key in keys}
    assert all(logged == list(range(1, epochs + 1)) for logged in steps.values()), steps
    marks = ",".join("?" * len(keys))
    rows = sqlite3.connect(shared).execute(f"select count(*) from metrics where key in ({marks})", keys)
    assert rows.fetchone()[0] == 4 * len(keys) * epochs
    assert all(not litter(repo) for repo in repos)
