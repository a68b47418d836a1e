import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow

from advnets.atomic import md5_of
from advnets.provenance import repository, tracking
from conftest import REPO


def test_a_queued_experiments_copy_records_itself_and_logs_to_the_repository_around_it(tmp_path, monkeypatch):
    """DVC runs a queued experiment's stages in a copy, <repo>/.dvc/tmp/exps/<tmp>/, with $DVC_ROOT
    set to <repo> (dvc/repo/experiments/queue/base.py): the copy's files are the run's lineage,
    the repository's store its home."""
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    (copy / ".dvc").mkdir(parents=True)
    (copy / "stages").mkdir()
    monkeypatch.chdir(copy)  # where DVC runs the stage (its wdir)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.workspace() == copy
    assert tracking.repo_root() == repo
    assert tracking.tracking_uri(tracking.repo_root()) == f"sqlite:///{repo / 'mlflow.db'}"
    monkeypatch.chdir(copy / "stages")  # a stage whose wdir is a subfolder
    assert tracking.workspace() == copy

    monkeypatch.chdir(repo)  # `dvc repro` in the repository itself
    assert tracking.repo_root() == tracking.workspace() == repo
    pipeline = repo / "pipelines" / "tfd"  # another dataset's pipeline: a DVC repository inside it
    (pipeline / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(pipeline)
    assert tracking.workspace() == pipeline and tracking.repo_root() == repo
    monkeypatch.delenv("DVC_ROOT")
    plain = tmp_path / "elsewhere"
    plain.mkdir()
    monkeypatch.chdir(plain)  # outside any DVC repository: the working directory
    assert tracking.repo_root() == tracking.workspace() == plain


def test_file_tags_are_the_md5_of_each_declared_file_that_exists(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "samples.npy").write_bytes(b"samples")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  download:\n    outs:\n    - path: data/mnist\n      md5: abc.dir\n"
    )
    (tmp_path / "data" / "mnist").mkdir()
    tags = tracking.file_tags(tmp_path, "parzen")
    assert tags["dvc.md5.data/samples.npy"] == md5_of(tmp_path / "data" / "samples.npy")
    assert tags["dvc.md5.data/mnist"] == "abc.dir"  # a folder: as dvc.lock records it
    assert "dvc.md5.metrics/parzen.json" not in tags  # not written yet
    assert set(repository.stage_files(tmp_path, "parzen")["outs"]) == {"metrics/parzen.json", "metrics/parzen_sigmas.csv"}


def test_lineage_changes_name_the_code_device_and_dependencies_that_differ():
    before = {"git.commit": "a1", "git.dirty": "false", "device": "cpu", "dvc.md5.src/x.py": "m1", "dvc.md5.out.pt": "o1"}
    after = {**before, "git.commit": "b2", "dvc.md5.src/x.py": "m2", "dvc.md5.out.pt": "o2", "device.name": "H200"}
    changes = tracking.lineage_changes(before, after, deps=["src/x.py"])
    # an output's md5 changes as training goes on: it is not the lineage
    assert changes == ["git.commit: a1 -> b2", "device.name: (not recorded) -> H200", "dvc.md5.src/x.py: m1 -> m2"]
    assert tracking.lineage_changes(after, after, deps=["src/x.py"]) == []


def test_resumes_are_read_from_the_tags_in_epoch_order():
    tags = {"resumed_after_epoch.781": "nothing", "resumed_after_epoch.99": "git.commit: a -> b", "git.commit": "b"}
    assert tracking.resumes(tags) == [{"epoch": 99, "changes": "git.commit: a -> b"}, {"epoch": 781, "changes": "nothing"}]


def test_the_machines_a_run_trained_on_are_read_from_its_resumes_in_order():
    cpu1, cpu2 = "AMD EPYC, 2 cores, 1 thread", "AMD EPYC, 2 cores, 2 threads"
    tags = {
        "resumed_after_epoch.900": f"git.commit: a -> b; device.name: {cpu1} -> {cpu2}",
        "resumed_after_epoch.100": "nothing",
        "resumed_after_epoch.950": f"device.name: {cpu2} -> H200; then device.name: H200 -> {cpu2}",
        "device.name": cpu2,
    }
    assert tracking.machines(tags) == [cpu1, cpu2, "H200", cpu2]
    assert tracking.machines({"resumed_after_epoch.5": "device.name: (not recorded) -> H200", "device.name": "H200"}) == ["H200"]
    assert tracking.machines({"device": "cpu"}) == ["cpu"]  # a run from before device.name
    assert tracking.machines({}) == []


def test_a_missing_store_is_a_sqlite_file_that_does_not_exist_as_sqlalchemy_reads_the_uri(tmp_path):
    (tmp_path / "my store.db").write_bytes(b"")
    there, absent = tmp_path / "my store.db", tmp_path / "none.db"
    assert not tracking.missing_store(f"sqlite:///{there}")
    assert not tracking.missing_store(f"sqlite:///{str(there).replace(' ', '%20')}?timeout=20")
    assert tracking.missing_store(f"sqlite:///{absent}") and tracking.missing_store(f"sqlite+pysqlite:///{absent}")
    for elsewhere in ("sqlite://", "sqlite:///:memory:", "http://localhost:5000", "databricks"):
        assert not tracking.missing_store(elsewhere), elsewhere


def test_a_stage_after_training_creates_no_store_to_log_to(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / "models").mkdir()
    (tmp_path / tracking.RUN_RECORD).write_text('{"run_id": "0123abcd"}')  # e.g. models brought by `dvc pull`
    assert tracking.record_stage("sample", {"sample.n": 10}) is None
    assert f"no MLflow store at sqlite:///{tmp_path / 'mlflow.db'}; sample results not logged" in capsys.readouterr().out
    assert not (tmp_path / "mlflow.db").exists()


def test_a_rerun_with_other_params_leaves_the_training_runs_row_to_the_params_it_holds(tmp_path, monkeypatch, capsys):
    """MLflow params are write-once: a parzen rerun with another sample.n must not put its score on
    the training run, whose row would then pair it with the first sample.n."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    store = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    training = store.create_run(store.create_experiment("advnets-test")).info.run_id
    (tmp_path / "models").mkdir()
    (tmp_path / tracking.RUN_RECORD).write_text(f'{{"run_id": "{training}"}}')
    (tmp_path / "sweep.csv").write_text("sigma,valid_ll\n")

    def parzen(params, score):
        headline = {"parzen.test_ll_mean": score}
        child = tracking.record_stage("parzen", params, metrics=headline, artifacts=["sweep.csv"], headline=headline)
        return store.get_run(training).data, store.get_run(child), store.list_artifacts(child, "parzen")

    row, child, child_files = parzen({"sample.n": 10, "parzen.device": "cpu"}, 100.0)
    assert row.metrics["parzen.test_ll_mean"] == 100.0 and row.params["sample.n"] == "10"
    assert not child_files and [a.path for a in store.list_artifacts(training, "parzen")] == ["parzen/sweep.csv"]

    row, child, child_files = parzen({"sample.n": 20, "parzen.device": "cpu"}, 90.0)
    assert row.metrics["parzen.test_ll_mean"] == 100.0 and row.params["sample.n"] == "10"  # still a pair
    assert child.data.metrics["parzen.test_ll_mean"] == 90.0 and child.data.params["sample.n"] == "20"
    assert child.info.status == "FINISHED" and [a.path for a in child_files] == ["parzen/sweep.csv"]
    said = capsys.readouterr().out
    assert f"run {training} keeps sample.n=10 (now 20)" in said and f"logged only in its nested run {child.info.run_id}" in said

    row, _, _ = parzen({"sample.n": 10, "parzen.device": "cuda"}, 101.0)  # where it ran changes no result
    assert row.metrics["parzen.test_ll_mean"] == 101.0 and row.params["parzen.device"] == "cpu"


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from advnets.provenance import tracking
root = Path(sys.argv[1])
(root / f"ready-{sys.argv[2]}").touch()
while not (root / "go").exists():
    time.sleep(0.005)
print(tracking.experiment_id("advnets-race", root))
"""


def test_processes_that_open_a_new_store_at_once_share_it(tmp_path, monkeypatch):
    """As three workers of `dvc queue start -j 3` on a fresh clone: without the lock, each process
    creates the store's tables and all but one fail."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_WHEN_TOLD, str(tmp_path), str(i)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = [proc.communicate(timeout=120) for proc in procs]
    errors = [[line for line in err.splitlines() if "Error" in line] for _, err in results]
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    assert len({out.strip() for out, _ in results}) == 1  # one experiment, the same id for all
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments(filter_string="name = 'advnets-race'")] == ["advnets-race"]


def test_a_store_in_a_folder_that_cannot_be_written_is_read_without_the_lock(tmp_path, monkeypatch, empty_mlflow_store):
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not isinstance(tracking.store_lock(uri), contextlib.nullcontext)
    assert isinstance(tracking.store_lock("http://127.0.0.1:5000"), contextlib.nullcontext)
    monkeypatch.setattr(tracking.os, "access", lambda path, mode: Path(path) != tmp_path)  # as on a read-only mount
    assert [e.name for e in tracking.client(uri).search_experiments()] == ["Default"]  # opened and read
    assert not (tmp_path / "mlflow.db.lock").exists()


def test_experiments_are_of_the_model_training_kind_so_the_ui_opens_on_their_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    store = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    older = store.create_experiment("made-before-the-tag")  # e.g. by an earlier advnets
    new = tracking.experiment_id("advnets-test", tmp_path)
    assert tracking.experiment_id("made-before-the-tag", tmp_path) == older
    for experiment in (new, older):
        assert store.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_run_whose_process_died_is_marked_killed_by_the_next_stage_and_a_live_ones_is_not(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    experiment = tracking.experiment_id("advnets-test", tmp_path)
    store = tracking.client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host = tracking.owner().rpartition(":")[0]
    dead = store.create_run(experiment, tags={tracking.OWNER_TAG: f"{host}:{gone.stdout.strip()}"}).info.run_id
    alive = store.create_run(experiment, tags={tracking.OWNER_TAG: tracking.owner()}).info.run_id
    elsewhere = store.create_run(experiment, tags={tracking.OWNER_TAG: f"another-machine:{gone.stdout.strip()}"}).info.run_id
    assert tracking.experiment_id("advnets-test", tmp_path) == experiment  # what every stage does first
    assert [store.get_run(r).info.status for r in (dead, alive, elsewhere)] == ["KILLED", "RUNNING", "RUNNING"]
    assert f"MLflow run {dead} " in capsys.readouterr().out
