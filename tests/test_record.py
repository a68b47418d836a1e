import json
import re
import sys

import mlflow
import pytest

from advnets.data import md5_of
from advnets.record import RecordError, check_files, load_record
from conftest import GIT_USER, REPO, TINY_PIPELINE


@pytest.fixture
def trained_outside(pipeline):
    """A committed tiny pipeline with its data, and a run of benchmarks/epoch_time.py in it (the
    train stage's loop without DVC or MLflow, as on a GPU machine) with its record and generator."""
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.repro("download")
    pipeline.run("git", "add", "-A")
    pipeline.run("git", *GIT_USER, "commit", "-q", "-m", "tiny pipeline")
    script = str(REPO / "benchmarks" / "epoch_time.py")
    pipeline.run(sys.executable, script, "--device", "cpu", "--epochs", "2", "--select", "--json", "run.json", "--save", "gen.pt")
    return pipeline


def test_a_run_trained_outside_the_pipeline_is_logged_scored_and_published_as_a_training_run(trained_outside):
    repo = trained_outside
    out = repo.run("advnets", "record", "run.json", "gen.pt").stdout
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

    traced = repo.run_unchecked("advnets", "lineage", "--run", run_id).stdout
    assert f"run {run_id} seed0-simultaneous (stage train by benchmarks/epoch_time.py, git {record['commit']}" in traced

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
    (repo.root / "cut.json").write_text(json.dumps({**record, "rows": unscored[:1]}))
    with pytest.raises(RecordError, match="stops at epoch 1 of train.epochs = 2, before any epoch was scored"):
        load_record(repo.root / "cut.json")
    # cut short, it is the run of as many epochs as its last scored one (nothing depends on train.epochs)
    longer = {**record["params"], "train": {**record["params"]["train"], "epochs": 5}}
    (repo.root / "cut.json").write_text(json.dumps({**record, "rows": [record["rows"][0], unscored[1]], "params": longer}))
    cut, params = load_record(repo.root / "cut.json")
    assert params.train.epochs == 1 and [row["epoch"] for row in cut["rows"]] == [1]
