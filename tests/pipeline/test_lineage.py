"""Lineage, queued experiments, the seed summary and the MLflow server, on one tiny pipeline run
in a fresh git + DVC repository. Tests that break the workspace put it back."""

import json
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from PIL import Image

from advnets.atomic import md5_of
from advnets.gan.nets import Generator
from conftest import GIT_USER, TINY_PIPELINE, PipelineCopy


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mnist_mirror, empty_mlflow_store) -> PipelineCopy:
    root = tmp_path_factory.mktemp("lineage") / "repo"
    root.mkdir()
    pipeline = PipelineCopy(root, mnist_mirror)
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    pipeline.set_params(**TINY_PIPELINE)
    pipeline.run("git", "add", "-A")
    pipeline.run("git", *GIT_USER, "commit", "-qm", "tiny pipeline")
    pipeline.repro()
    return pipeline


def lineage(repo, *args):
    return repo.run_unchecked("advnets", "lineage", *args)


@contextmanager
def restored(repo, path):
    """Put a file back after the test has changed it."""
    original = (repo.root / path).read_bytes()
    try:
        yield repo.root / path
    finally:
        (repo.root / path).write_bytes(original)


def training_run_id(repo) -> str:
    return json.loads((repo.root / "models" / "mlflow-run.json").read_text())["run_id"]


def test_lineage_of_a_fresh_run_agrees_everywhere(repo):
    result = lineage(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: the files, dvc.lock and MLflow agree" in result.stdout
    verdict = result.stdout.splitlines()[0]
    assert verdict.startswith("PASS: ") and " MLflow runs checked, " in verdict, verdict

    report = json.loads(lineage(repo, "--json").stdout)
    assert report["ok"] and report["git"]["git.dirty"] == "false"  # DVC's own writes are not "dirty"
    stages = {stage["stage"]: stage for stage in report["stages"]}
    assert list(stages)[:5] == ["validate", "download", "train", "sample", "parzen"]
    assert stages["validate"]["outputs"] == []  # it only checks params.yaml
    assert stages["train"]["params"]["train.epochs"] == 2
    outputs = {out["path"]: out for stage in report["stages"] for out in stage["outputs"]}
    lock = {out["path"]: out["md5"] for stage in repo.lock()["stages"].values() for out in stage.get("outs", [])}
    for path in ("data/mnist", "models/generator.pt", "data/samples.npy", "metrics/parzen.json", "figures/figure2.png"):
        assert outputs[path]["md5"] == outputs[path]["locked_md5"] == lock[path], path
    generator_runs = {(run["run_id"], run["stage"]) for run in outputs["models/generator.pt"]["runs"]}
    assert (training_run_id(repo), "train") in generator_runs
    assert {"sample", "figures"} <= {stage for _, stage in generator_runs}  # they read it


def test_lineage_against_a_store_that_does_not_exist_says_so_once_and_creates_none(repo, tmp_path):
    """A fresh clone has no store: the files and dvc.lock are still checked, and the verdict says
    that the runs were not."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # e.g. a fresh clone's: mlflow.db is not in git
    result = lineage(repo, "--tracking-uri", uri)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS: ") and "MLflow run" not in lines[0]
    assert lines[1] == "Each output's content entered dvc.lock at:"  # the tiny pipeline's lock is uncommitted
    assert "  no commit (dvc.lock not committed): data/mnist, " in lines[2]
    lines = lines[lines.index("Not checked here:") - 1:]
    why = (f"the MLflow store at {uri} (from --tracking-uri) does not exist: a fresh clone has none (mlflow.db is "
           "not in git); name the store that holds the runs with --tracking-uri or MLFLOW_TRACKING_URI, or make them "
           "with `dvc repro`")
    assert lines[2] == f"  MLflow runs: {why}" and result.stdout.count(why) == 1
    assert not [line for line in lines if line.startswith("MISMATCH")]
    from_run = lineage(repo, "--run", training_run_id(repo), "--tracking-uri", uri)
    assert from_run.returncode == 1 and f"the MLflow store at {uri} (from --tracking-uri) does not exist" in from_run.stdout
    assert not (tmp_path / "mlflow.db").exists()


def test_lineage_against_a_store_without_runs_says_so_once(repo, tmp_path, empty_mlflow_store):
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    result = lineage(repo, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--json")
    assert result.returncode == 0
    (note,) = json.loads(result.stdout)["verdict"]["not_checked"]
    assert note.endswith("holds no runs: name the store that holds them with --tracking-uri or MLFLOW_TRACKING_URI")


def test_lineage_names_a_hand_edited_metrics_file(repo):
    locked = next(out["md5"] for out in repo.lock()["stages"]["parzen"]["outs"] if out["path"] == "metrics/parzen.json")
    with restored(repo, "metrics/parzen.json") as path:
        metrics = json.loads(path.read_text())
        metrics["test_ll_mean"] += 100
        path.write_text(json.dumps(metrics, indent=2) + "\n")
        result = lineage(repo)
        report = json.loads(lineage(repo, "--json").stdout)
        edited = md5_of(path)
    assert result.returncode == 1
    mismatches = [line for line in result.stdout.splitlines() if line.startswith("MISMATCH")]
    assert mismatches and all("metrics/parzen.json" in line for line in mismatches), result.stdout
    # the verdict first, by cause; --json gives each mismatch as a record
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAIL: ") and f"{len(mismatches)} mismatch" in first
    assert "  output differs from the lock (1): metrics/parzen.json" in result.stdout.splitlines()[1:4]
    assert report["verdict"]["by_cause"]["output differs from the lock"] == ["metrics/parzen.json"]
    assert {"path": "metrics/parzen.json", "cause": "output differs from the lock", "expected": locked,
            "found": edited} in [{k: m[k] for k in ("path", "cause", "expected", "found")} for m in report["mismatches"]]
    assert report["verdict"]["files_matching"] == report["verdict"]["files_checked"] - 1
    assert lineage(repo).returncode == 0


def test_lineage_fails_on_a_deleted_code_file_rather_than_calling_it_absent(repo):
    path = repo.root / "stages" / "sample.py"
    original = path.read_bytes()
    path.unlink()
    try:
        result = lineage(repo, "--json")
    finally:
        path.write_bytes(original)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and "stages/sample.py" in report["verdict"]["by_cause"]["code changed since the lock"]
    assert not any("stages/sample.py" in note for note in report["verdict"]["not_checked"])


def test_lineage_names_a_training_param_changed_without_a_repro(repo):
    with restored(repo, "params.yaml"):
        repo.set_params(train={"lr": 0.05})
        result = lineage(repo)
    assert result.returncode == 1
    assert "MISMATCH params.yaml: train.lr is 0.05 but stage train ran with 0.1" in result.stdout


def test_lineage_names_a_replaced_generator_from_the_workspace_and_from_the_run(repo):
    with restored(repo, "models/generator.pt") as path:
        torch.save(Generator(100, [32, 32], 784, 0.05).state_dict(), path)
        result = lineage(repo)
        from_run = lineage(repo, "--run", training_run_id(repo), "--json")
    assert result.returncode == 1
    assert "MISMATCH models/generator.pt: modified since stage train wrote it" in result.stdout
    assert from_run.returncode == 1
    assert any(m["message"].startswith("models/generator.pt: run ") and m["cause"] == "run tags disagree with files"
               for m in json.loads(from_run.stdout)["mismatches"])


def test_lineage_from_a_run_follows_the_models_stage_runs(repo):
    result = lineage(repo, "--run", training_run_id(repo), "--json")
    assert result.returncode == 0, result.stdout
    runs = json.loads(result.stdout)["runs"]
    assert [run["stage"] for run in runs][0] == "train"
    assert {run["stage"] for run in runs[1:]} == {"sample", "parzen", "figures", "report"}
    parzen = next(run for run in runs if run["stage"] == "parzen")
    assert parzen["params"]["parzen.valid_points"] == "100"
    assert parzen["files"]["data/samples.npy"] == repo.lock()["stages"]["sample"]["outs"][0]["md5"]


def test_published_weights_score_as_the_pipeline_did_and_lineage_covers_them(repo):
    published = repo.run("advnets", "publish").stdout
    assert "registered model advnets-mnist-generator version 1 now has the alias seed-0" in published
    store = mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    assert store.get_model_version_by_alias("advnets-mnist-generator", "seed-0").run_id == training_run_id(repo)
    folder = repo.root / "results" / "mnist" / "seed-0"
    assert (folder / "generator.pt").read_bytes() == (repo.root / "models" / "generator.pt").read_bytes()
    record = json.loads((folder / "lineage.json").read_text())
    parzen = json.loads((repo.root / "metrics" / "parzen.json").read_text())
    assert record["run_id"] == training_run_id(repo)
    assert record["parzen"]["test_ll_mean"] == pytest.approx(parzen["test_ll_mean"])
    assert record["files"]["data/mnist"] == repo.lock()["stages"]["download"]["outs"][0]["md5"]

    scored = repo.run("advnets", "score", "results/mnist/seed-0/generator.pt").stdout
    assert f"{parzen['test_ll_mean']:.2f} ± {parzen['test_ll_se']:.2f}" in scored
    assert f"matches the published figure {parzen['test_ll_mean']:.3f} (results/mnist/seed-0/lineage.json" in scored
    with restored(repo, "results/mnist/seed-0/lineage.json") as path:  # a published figure that is off
        path.write_text(json.dumps({**record, "parzen": {**record["parzen"], "test_ll_mean": parzen["test_ll_mean"] + 1}}))
        off = repo.run_unchecked("advnets", "score", "results/mnist/seed-0/generator.pt")
    assert off.returncode == 1 and "does NOT match the published figure" in off.stdout and "difference -1.000" in off.stdout
    with restored(repo, "params.yaml"):
        repo.set_params(sample={"seed": 1})
        other = repo.run("advnets", "score", "results/mnist/seed-0/generator.pt").stdout
    assert "sample.seed 0 there, 1 here): not compared" in other
    assert "not a published generator" in repo.run("advnets", "score", "models/generator.pt").stdout

    repo.run("advnets", "publish", "--variant", "epochs-7")  # the same run, as a variant's
    assert (repo.root / "results" / "mnist" / "epochs-7" / "seed-0" / "generator.pt").is_file()
    refused = repo.run_unchecked("advnets", "publish", "--variant", "../elsewhere")
    assert refused.returncode != 0 and "variant name '../elsewhere'" in refused.stderr

    result = lineage(repo)
    assert result.returncode == 0 and "published results/mnist/seed-0/generator.pt" in result.stdout
    assert "published results/mnist/epochs-7/seed-0/generator.pt" in result.stdout
    with restored(repo, "results/mnist/seed-0/generator.pt") as path:
        path.write_bytes(path.read_bytes()[:-1] + b"x")
        result = lineage(repo)
    assert result.returncode == 1
    assert "MISMATCH results/mnist/seed-0/generator.pt: md5" in result.stdout


def experiment_lock(repo, name: str) -> dict:
    """The dvc.lock an experiment committed, read from its git ref (refs/exps/.../<name>)."""
    refs = repo.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    (ref,) = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return yaml.safe_load(repo.run("git", "show", f"{ref}:dvc.lock").stdout)


def locked_md5(lock: dict, stage: str, path: str) -> str:
    (md5,) = [out["md5"] for out in lock["stages"][stage]["outs"] if out["path"] == path]
    return md5


def test_queued_experiments_record_their_own_lineage_and_seeds_summarise_them(repo):
    """Queued experiments run in temporary copies while DVC sets $DVC_ROOT to the repository that
    queued them: each run must record its own copy's files (generator md5 tag = logged artifact =
    that experiment's dvc.lock), publish, join the seed summary with its own md5, and, applied,
    pass lineage with no mismatch."""
    for seed in (1, 2):
        repo.run("dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}")
    # The workers outlive `dvc queue start` and inherit its output; a file, not a pipe, so that a
    # worker slow to exit (dvc-task's idle monitor can leave one sleeping) cannot hold the test.
    with open(repo.root.parent / "queue-start.log", "w") as log:
        subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=repo.root, env=repo.env, stdout=log, stderr=log, check=True)
    deadline = time.monotonic() + 600
    while True:
        status = repo.run("dvc", "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == 2, status
    assert not list((repo.root / ".dvc" / "tmp" / "exps").glob("tmp*"))  # the copies are gone

    client = mlflow.MlflowClient(f"sqlite:///{repo.root / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "advnets-mnist"]
    queued = client.search_runs([experiment.experiment_id], "tags.DVC_STAGE = 'train' and tags.DVC_EXP_NAME != ''")
    assert sorted(run.data.params["train.seed"] for run in queued) == ["1", "2"]
    for run in queued:  # named for its experiment, seed, length and id; described by what made it
        exp, seed = run.data.tags["DVC_EXP_NAME"], run.data.params["train.seed"]
        assert run.info.run_name == f"{exp}-seed{seed}-simultaneous-2ep-{run.info.run_id[:6]}"
        assert f"under `dvc exp run` (DVC experiment `{exp}`)" in run.data.tags["mlflow.note.content"]
    generator = "models/generator.pt"
    md5s = {}
    for run in queued:
        assert "parzen.test_ll_mean" in run.data.metrics
        artifacts = run.info.artifact_uri.removeprefix("file://")
        assert artifacts.startswith(str(repo.root / "mlartifacts"))  # not in the deleted copy
        assert (Path(artifacts) / "model" / "generator.pt").is_file()
        lock = experiment_lock(repo, run.data.tags["DVC_EXP_NAME"])
        tag = run.data.tags[f"dvc.md5.{generator}"]
        assert tag == md5_of(Path(artifacts) / "model" / "generator.pt") == locked_md5(lock, "train", generator)
        assert run.data.tags["dvc.md5.data/mnist"] == locked_md5(lock, "download", "data/mnist")
        md5s[run.data.params["train.seed"]] = tag
    assert len(set(md5s.values())) == 2  # two seeds, two generators

    for run in queued:  # each publishes: its artifact is the file its tags name
        repo.run("advnets", "publish", "--run", run.info.run_id)
        seed = run.data.params["train.seed"]
        published = json.loads((repo.root / "results" / "mnist" / f"seed-{seed}" / "lineage.json").read_text())
        assert published["generator_md5"] == md5s[seed] and published["run_id"] == run.info.run_id

    repo.run("advnets", "seeds")
    summary = json.loads((repo.root / "metrics" / "seeds.json").read_text())
    assert [row["seed"] for row in summary["seeds"]] == [0, 1, 2]
    scores = [row["test_ll_mean"] for row in summary["seeds"]]
    assert summary["test_ll_mean"] == pytest.approx(statistics.fmean(scores))
    assert summary["test_ll_sd"] == pytest.approx(statistics.stdev(scores))
    assert summary["seeds"][0]["run_id"] == training_run_id(repo)
    assert {row["dvc_experiment"] for row in summary["seeds"][1:]} == {run.data.tags["DVC_EXP_NAME"] for run in queued}
    assert {str(row["seed"]): row["generator_md5"] for row in summary["seeds"][1:]} == md5s

    repo.run("advnets", "variants")  # all three seeds are of params.yaml's configuration
    table = json.loads((repo.root / "metrics" / "variants.json").read_text())
    (variant,) = [row for row in table["variants"] if row["changes"] == {}]
    assert variant["n_seeds"] == 3 and not {row["run_id"] for row in variant["seeds"]} & set(table["not_in_store"])
    # the committed table's runs (of the project's params.yaml) are kept, as changes from this one's
    assert len(table["variants"]) > 1 and table["not_in_store"]
    for row in variant["seeds"]:  # every scored epoch, the selected one among them
        epochs = [epoch for epoch, _ in row["valid_curve"]]
        assert epochs == sorted(epochs) and row["selected_epoch"] in epochs
    assert Image.open(repo.root / "figures" / "variants.png").size == (1100, 660)

    for run in queued:  # applied, each experiment's results are its run's, file for file
        name = run.data.tags["DVC_EXP_NAME"]
        repo.run("dvc", "exp", "apply", name)
        result = lineage(repo)
        assert result.returncode == 0 and "MISMATCH" not in result.stdout, f"{name}:\n{result.stdout}"
        assert (repo.root / generator).read_bytes() == (repo.root / "results" / "mnist" / f"seed-{run.data.params['train.seed']}" / "generator.pt").read_bytes()
    repo.run("git", "checkout", "--", ".")  # back to the committed run for the tests after this one
    repo.run("dvc", "checkout", "--force")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, endpoint, body=None):
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_mlflow_server_serves_the_runs_over_rest(repo):
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{repo.root / 'mlflow.db'}"],
        cwd=repo.root, env=repo.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(1)
        experiment = api(base, "experiments/get-by-name?experiment_name=advnets-mnist")["experiment"]
        run_id = training_run_id(repo)
        run = api(base, f"runs/get?run_id={run_id}")["run"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params["train.epochs"] == "2" and params["model.g_hidden"] == "[32, 32]"
        assert metrics["parzen.test_ll_mean"] == pytest.approx(json.loads((repo.root / "metrics/parzen.json").read_text())["test_ll_mean"])
        history = api(base, f"metrics/get-history?run_id={run_id}&metric_key=d_loss")["metrics"]
        assert [m["step"] for m in history] == [1, 2]
        found = api(base, "runs/search", {"experiment_ids": [experiment["experiment_id"]],
                                          "filter": "tags.DVC_STAGE = 'train'"})["runs"]
        assert run_id in {r["info"]["run_id"] for r in found}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_a_store_that_cannot_be_searched_is_said_so_and_nothing_is_traced(tmp_path, empty_mlflow_store, monkeypatch):
    from advnets.provenance.lineage import RunFinder

    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    finder = RunFinder(uri)

    def unreachable(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("connection refused")

    monkeypatch.setattr(finder.client, "search_runs", unreachable)
    assert not finder.has_runs()
    assert finder.recorded("models/generator.pt", "0" * 32) == []  # no second attempt, no crash
    assert finder.why_no_runs("--tracking-uri") == f"the MLflow store at {uri} (from --tracking-uri) could not be read (connection refused)"
