import json
import re
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from advnets.atomic import md5_of
from advnets.provenance.runlog import RecordError, check_files, load_record
from conftest import GIT_USER, TINY_PIPELINE, copy_folders, imported_modules


def epoch_time(root) -> list[str]:
    """The command line of the checkout's own benchmarks/epoch_time.py, on the CPU, with selection."""
    return [sys.executable, str(root / "benchmarks" / "epoch_time.py"), "--device", "cpu", "--select"]


@pytest.fixture
def tiny_repo(pipeline):
    """A committed tiny pipeline with its data."""
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.repro("download")
    pipeline.run("git", "add", "-A")
    pipeline.run("git", *GIT_USER, "commit", "-q", "-m", "tiny pipeline")
    return pipeline


@pytest.fixture
def trained_outside(tiny_repo):
    """A run of benchmarks/epoch_time.py in the tiny pipeline (the train stage's loop without DVC
    or MLflow, as on a GPU machine), with its record and generator. It is started from a folder
    outside the checkout: the script reads its own checkout's params and data, and records its commit."""
    root, elsewhere = tiny_repo.root, tiny_repo.root.parent / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([*epoch_time(root), "--epochs", "2", "--json", str(root / "run.json"), "--save", str(root / "gen.pt")],
                         cwd=elsewhere, env=tiny_repo.env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return tiny_repo


def test_epoch_time_runs_its_own_checkouts_code(tmp_path):
    """The record names the commit of the checkout holding the script: it must run that
    checkout's advnets, not an installed one."""
    copy_folders(tmp_path, "benchmarks", "src")
    imported = imported_modules(tmp_path / "benchmarks" / "epoch_time.py")
    assert imported and all(tmp_path.resolve() in module.parents for module in imported)


def test_a_run_ended_by_sigterm_stops_after_its_epoch_with_its_files_whole(tiny_repo):
    args = [*epoch_time(tiny_repo.root), "--epochs", "500", "--json", "run.json", "--save", "gen.pt"]
    run = subprocess.Popen(args, cwd=tiny_repo.root, env=tiny_repo.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    record = tiny_repo.root / "run.json"
    deadline = time.monotonic() + 120
    while not record.exists():  # the first scored epoch is written
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 0 and "stopped by SIGTERM after epoch" in out
    cut, params = load_record(record)  # every tiny epoch is scored: the run of as many epochs
    assert 1 <= params.train.epochs == len(cut["rows"]) < 500
    check_files(cut, tiny_repo.root / "gen.pt", tiny_repo.root / "data")  # the generator is the record's
    assert json.loads(record.read_text())["finished"]  # it ended: recorded as the run of as many epochs, and says so
    out = tiny_repo.run("advnets", "record", "run.json", "gen.pt").stdout
    assert f"the run ended early, after its scored epoch {params.train.epochs} of the 500 planned" in out


def test_a_run_trained_outside_the_pipeline_is_logged_scored_and_published_as_a_training_run(trained_outside):
    repo = trained_outside
    out = repo.run("advnets", "record", "run.json", "gen.pt").stdout
    assert re.search(r"selected epoch [12] of 2\n", out) and "ended early" not in out  # the whole run
    run_id = re.search(r"recorded run (\w+): Parzen log-likelihood on the test set (\S+)", out)
    run_id, logged_score = run_id[1], run_id[2]
    # the score is the sample and parzen stages' protocol on the generator, as `advnets score` gives it
    assert f"test images {logged_score} ±" in repo.run("advnets", "score", "gen.pt").stdout

    client = mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    run = client.get_run(run_id)
    record = json.loads((repo.root / "run.json").read_text())
    assert run.info.status == "FINISHED"
    assert run.data.tags["trained_by"] == "benchmarks/epoch_time.py"
    assert run.data.tags["git.commit"] == repo.run("git", "rev-parse", "HEAD").stdout.strip() == record["commit"]
    assert run.data.tags["dvc.md5.models/generator.pt"] == md5_of(repo.root / "gen.pt")
    assert (run.data.tags["device"], run.data.tags["device.name"]) == ("cpu", record["device"])
    assert run.data.params["train.epochs"] == "2" and run.data.params["parzen.test_points"] == "200"
    assert [m.step for m in client.get_metric_history(run_id, "select.valid_ll")] == [1, 2]
    assert run.data.metrics["selected_epoch"] == record["selected_epoch"]
    assert run.info.start_time == int(record["started"] * 1000)  # when it trained, not when it was recorded
    again = repo.run_unchecked("advnets", "record", "run.json", "gen.pt")
    assert again.returncode == 2 and f"already recorded, as run {run_id}" in again.stderr

    traced = repo.run_unchecked("advnets", "lineage", "--run", run_id).stdout
    name = f"record-seed0-simultaneous-2ep-{run_id[:6]}"  # unique: what made it, what it is, its length, its id
    assert run.info.run_name == name and "made outside the pipeline by benchmarks/epoch_time.py" in run.data.tags["mlflow.note.content"]
    assert f"run {run_id} {name} (stage train by benchmarks/epoch_time.py, git {record['commit']}" in traced

    repo.run("advnets", "seeds")  # counted as a seed of params.yaml's configuration
    (seed,) = json.loads((repo.root / "metrics" / "seeds.json").read_text())["seeds"]
    assert seed["run_id"] == run_id and seed["dvc_experiment"] is None

    repo.run("advnets", "publish", "--run", run_id)
    folder = repo.root / "results" / "mnist" / "seed-0"
    assert md5_of(folder / "generator.pt") == md5_of(repo.root / "gen.pt")
    assert json.loads((folder / "lineage.json").read_text())["trained_by"] == "benchmarks/epoch_time.py"


def test_a_record_that_does_not_match_its_files_or_stopped_early_is_refused(trained_outside):
    repo = trained_outside
    tampered = repo.root / "tampered.pt"
    tampered.write_bytes((repo.root / "gen.pt").read_bytes() + b"\0")
    refused = repo.run_unchecked("advnets", "record", "run.json", "tampered.pt")
    assert refused.returncode == 2 and "the record's selected generator has" in refused.stderr
    assert not (repo.root / "mlflow.db").exists()  # nothing was logged

    record = json.loads((repo.root / "run.json").read_text())
    with pytest.raises(RecordError, match="the run trained on 0{32}"):
        check_files({**record, "data_md5": {"valid": "0" * 32}}, repo.root / "gen.pt", repo.root / "data")

    unselected = {k: v for k, v in record.items() if k not in ("selected_epoch", "generator_md5")}
    (repo.root / "unselected.json").write_text(json.dumps(unselected))
    with pytest.raises(RecordError, match="has no selected_epoch, generator_md5"):
        load_record(repo.root / "unselected.json")

    unscored = [{k: v for k, v in row.items() if not k.startswith("select")} for row in record["rows"]]
    (repo.root / "cut.json").write_text(json.dumps({**record, "rows": unscored}))
    with pytest.raises(RecordError, match=f"its selected epoch, {record['selected_epoch']}, is not one of its scored epochs"):
        load_record(repo.root / "cut.json")
    (repo.root / "cut.json").write_text(json.dumps({**record, "rows": [record["rows"][1], record["rows"][0]]}))
    with pytest.raises(RecordError, match="row 1 is not epoch 1's figures"):
        load_record(repo.root / "cut.json")

    # Cut short, it is the run of as many epochs as its last scored one (nothing depends on
    # train.epochs); --epochs cuts at a scored epoch from the selected one on.
    longer = {**record["params"], "train": {**record["params"]["train"], "epochs": 5}}
    first = {**record, "selected_epoch": 1, "params": longer}
    (repo.root / "cut.json").write_text(json.dumps({**first, "rows": [record["rows"][0], unscored[1]]}))
    cut, params = load_record(repo.root / "cut.json")
    assert params.train.epochs == 1 and [row["epoch"] for row in cut["rows"]] == [1]
    (repo.root / "cut.json").write_text(json.dumps(first))
    assert load_record(repo.root / "cut.json", epochs=1)[1].train.epochs == 1
    assert "planned_epochs" not in load_record(repo.root / "cut.json", epochs=1)[0]  # cut on purpose
    cut, params = load_record(repo.root / "cut.json")
    assert params.train.epochs == 2 and cut["planned_epochs"] == 5  # the last scored epoch, of the 5 planned
    # A record written while its run was under way (or killed before it ended) is not taken as
    # the run's end: only with --epochs.
    (repo.root / "cut.json").write_text(json.dumps({**first, "finished": False}))
    with pytest.raises(RecordError, match="was written while its run was under way \\(at epoch 2 of 5\\).*--epochs E"):
        load_record(repo.root / "cut.json")
    assert load_record(repo.root / "cut.json", epochs=2)[1].train.epochs == 2
    (repo.root / "cut.json").write_text(json.dumps({**first, "selected_epoch": 2}))
    with pytest.raises(RecordError, match="cannot be cut at epoch 1: a cut must be a scored epoch from the selected one, 2"):
        load_record(repo.root / "cut.json", epochs=1)
