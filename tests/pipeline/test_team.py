"""Beyond one machine: the pipeline and every advnets command against an MLflow tracking server
whose backend store is a real PostgreSQL (started here, as an unprivileged user, in a temporary
folder, on a loopback port), and four trainings logging to it at once."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from conftest import GIT_USER, TINY_PIPELINE, PipelineCopy

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres_user(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as `nobody`."""
    return ["runuser", "-u", "nobody", "--", *command] if os.geteuid() == 0 else list(command)


@pytest.fixture(scope="module")
def tracking_server():
    """An MLflow server (proxied artifacts) on a PostgreSQL database; yields its URI."""
    if not (PG_BIN / "initdb").exists():
        message = f"PostgreSQL 15 is not installed ({PG_BIN}): the team setup cannot be tested"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # pytest's own temporary folders are closed to other users: the database gets one in /tmp
    folder = Path(tempfile.mkdtemp(prefix="advnets-postgres-"))
    os.chmod(folder, 0o777)  # the unprivileged database user writes here
    data, pg_port, port = folder / "pgdata", free_port(), free_port()

    def run(*args: str) -> None:
        subprocess.run(as_postgres_user(*args), check=True, capture_output=True, text=True)

    run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "advnets", "--auth=trust", "-E", "UTF8")
    run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-w", "start",
        "-o", f"-p {pg_port} -k {folder} -c listen_addresses=127.0.0.1")
    server, log = None, open(folder / "server.log", "w")  # noqa: SIM115  closed when the server is
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "advnets", "mlflow")
        uri = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"postgresql+psycopg://advnets@127.0.0.1:{pg_port}/mlflow",
             "--artifacts-destination", str(folder / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield uri
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        log.close()
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def tiny_repo(root: Path, mirror: Path, uri: str) -> PipelineCopy:
    root.mkdir()
    repo = PipelineCopy(root, mirror)
    repo.env["MLFLOW_TRACKING_URI"] = uri
    repo.set_params(**TINY_PIPELINE)
    repo.run("git", "add", "-A")
    repo.run("git", *GIT_USER, "commit", "-qm", "tiny pipeline")
    return repo


def test_the_pipeline_and_every_command_work_against_a_server_on_postgresql(tracking_server, tmp_path, mnist_mirror):
    repo = tiny_repo(tmp_path / "repo", mnist_mirror, tracking_server)
    repo.repro()
    assert not (repo.root / "mlflow.db").exists()  # nothing went to the embedded store
    run_id = json.loads((repo.root / "models" / "mlflow-run.json").read_text())["run_id"]

    lineage = repo.run("advnets", "lineage")
    assert lineage.stdout.startswith("PASS: ") and " MLflow runs checked" in lineage.stdout.splitlines()[0]
    assert repo.run("advnets", "lineage", "--run", run_id).stdout.startswith("PASS: ")
    repo.run("advnets", "seeds")
    assert json.loads((repo.root / "metrics" / "seeds.json").read_text())["seeds"][0]["run_id"] == run_id
    repo.run("advnets", "variants")
    published = repo.run("advnets", "publish").stdout
    assert "now has the alias seed-0" in published
    client = mlflow.MlflowClient(tracking_server)
    assert client.get_model_version_by_alias("advnets-mnist-generator", "seed-0").run_id == run_id
    assert client.get_run(run_id).data.tags["dvc.md5.models/generator.pt"] == json.loads(
        (repo.root / "results" / "mnist" / "seed-0" / "lineage.json").read_text())["generator_md5"]


def test_four_trainings_log_to_the_server_at_once_and_lose_no_metric_step(tracking_server, tmp_path, mnist_mirror):
    epochs = 6
    first = tiny_repo(tmp_path / "r0", mnist_mirror, tracking_server)
    first.repro("download")
    repos = [first]
    for n in range(1, 4):
        repo = tiny_repo(tmp_path / f"r{n}", mnist_mirror, tracking_server)
        shutil.copytree(first.root / "data" / "mnist", repo.root / "data" / "mnist")
        repos.append(repo)
    for n, repo in enumerate(repos):
        repo.set_params(train={"seed": 100 + n, "epochs": epochs}, tracking={"experiment": "advnets-concurrency"})
    trainings = [subprocess.Popen([sys.executable, "stages/train.py"], cwd=repo.root, env=repo.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for repo in repos]
    outputs = [training.communicate(timeout=600)[0] for training in trainings]
    assert [training.returncode for training in trainings] == [0] * 4, [output[-1500:] for output in outputs]

    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("advnets-concurrency").experiment_id
    runs = client.search_runs([experiment], "tags.DVC_STAGE = 'train'")
    assert len(runs) == 4 and {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.data.params["train.seed"] for run in runs) == ["100", "101", "102", "103"]
    keys = ("d_loss", "g_loss", "d_real", "d_fake", "valid_parzen", "lr", "momentum")
    rows = {(run.info.run_id, key): [m.step for m in client.get_metric_history(run.info.run_id, key)]
            for run in runs for key in keys}
    assert all(steps == list(range(1, epochs + 1)) for steps in rows.values()), rows
    found = sum(len(steps) for steps in rows.values())
    print(f"4 concurrent trainings: {found} per-epoch metric rows found, {4 * len(keys) * epochs} expected")
    assert found == 4 * len(keys) * epochs


def test_experiments_made_on_two_machines_meet_in_a_third_through_git_a_dvc_remote_and_the_server(
        tracking_server, tmp_path, mnist_mirror):
    """Two clones stand for two machines, a bare repository for the lab's git server, a folder for
    the DVC remote: each runs a queued experiment and pushes it; a third clone pulls both, applies
    one, and its lineage matches the run on the server."""
    lab_git, storage = tmp_path / "lab.git", tmp_path / "dvc-storage"
    origin = tiny_repo(tmp_path / "origin", mnist_mirror, tracking_server)
    origin.run("dvc", "remote", "add", "-d", "lab", str(storage))
    origin.run("git", "add", ".dvc/config")
    origin.run("git", *GIT_USER, "commit", "-qm", "the lab's DVC remote")
    subprocess.run(["git", "clone", "-q", "--bare", str(origin.root), str(lab_git)], check=True)

    def clone(name: str) -> PipelineCopy:
        subprocess.run(["git", "clone", "-q", str(lab_git), str(tmp_path / name)], check=True)
        repo = PipelineCopy.__new__(PipelineCopy)
        repo.root, repo.env = tmp_path / name, dict(origin.env)
        return repo

    made = {}
    for name, seed in (("machine-a", 1), ("machine-b", 2)):
        repo = clone(name)
        repo.run("dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}", "--name", f"seed-{seed}-{name}")
        with open(repo.root.parent / f"{name}-queue.log", "w") as log:
            subprocess.run(["dvc", "queue", "start"], cwd=repo.root, env=repo.env, stdout=log, stderr=log, check=True)
        deadline = time.monotonic() + 600
        while "Queued" in (status := repo.run("dvc", "queue", "status").stdout) or "Running" in status:
            assert time.monotonic() < deadline, status
            time.sleep(3)
        assert "Success" in status, status
        repo.run("dvc", "exp", "push", "origin", f"seed-{seed}-{name}")  # git refs to the lab, data to its remote
        made[seed] = f"seed-{seed}-{name}"

    third = clone("machine-c")
    for exp in made.values():
        third.run("dvc", "exp", "pull", "origin", exp)
    shown = third.run("dvc", "exp", "show", "--json").stdout
    assert all(exp in shown for exp in made.values())
    third.run("dvc", "exp", "apply", made[2])
    third.run("dvc", "checkout")
    assert "up to date" in third.run("dvc", "status").stdout
    lineage = third.run("advnets", "lineage")
    assert lineage.stdout.startswith("PASS: ") and " MLflow runs checked" in lineage.stdout.splitlines()[0]
    run_id = json.loads((third.root / "models" / "mlflow-run.json").read_text())["run_id"]
    run = mlflow.MlflowClient(tracking_server).get_run(run_id)
    assert run.data.params["train.seed"] == "2" and run.data.tags["DVC_EXP_NAME"] == made[2]
