import hashlib
import json
import re
import shutil

import mlflow
import pytest
import torch

from advnets.gan.checkpoint import ResumeError
from advnets.gan.trainer import NonFiniteError
from advnets.params import validate
from advnets.pipeline.train import TrainOutputs, run_training
from advnets.provenance import repository
from advnets.provenance.lineage import format_text, run_lineage
from advnets.provenance.publish import run_lineage_record
from conftest import TINY, override
from fakes import Interrupt, interrupt_after

OUT = TrainOutputs()


def weights(path):
    return torch.load(path, weights_only=True)


def test_outputs_and_the_mlflow_run(workdir, tiny_params):
    history = run_training(tiny_params)
    assert [row["epoch"] for row in history] == [1, 2]
    for path in (OUT.generator, OUT.discriminator, OUT.run_record, OUT.summary, OUT.curve):
        assert path.is_file(), path
    assert not OUT.checkpoint.exists()  # removed once training ends
    assert json.loads(OUT.summary.read_text())["epoch"] == 2
    assert OUT.curve.read_text().splitlines()[0].startswith("epoch,d_loss,g_loss,d_real,d_fake,valid_parzen")

    record = json.loads(OUT.run_record.read_text())
    assert record["tracking_uri"] == f"sqlite:///{workdir / 'mlflow.db'}"
    client = mlflow.MlflowClient(record["tracking_uri"])
    run = client.get_run(record["run_id"])
    assert run.data.params["train.lr"] == "0.1" and run.data.params["model.g_hidden"] == "[32, 32]"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_parzen")] == [1, 2]
    assert run.data.tags["device"] == "cpu" and "git.commit" in run.data.tags
    assert re.fullmatch(r".+, \d+ cores, \d+ threads?", run.data.tags["device.name"])  # e.g. "AMD EPYC, 2 cores, 2 threads"
    # the sample grids as MLflow images with a step, which the run page steps through and Compare lines up
    images = [a.path.removeprefix("images/") for a in client.list_artifacts(run.info.run_id, "images")]
    assert sorted(int(name.split("+")[2]) for name in images if name.startswith("samples+step+") and name.endswith(".png")) == [1, 2]
    assert str(workdir / "mlartifacts") in run.info.artifact_uri


def test_model_files_are_byte_stable_across_runs(workdir, tiny_params):
    run_training(tiny_params)
    first = OUT.generator.read_bytes(), OUT.discriminator.read_bytes()
    OUT.generator.unlink()
    run_training(tiny_params)
    assert (OUT.generator.read_bytes(), OUT.discriminator.read_bytes()) == first  # DVC sees no change


def test_interrupted_training_resumes_to_the_same_weights(workdir, tiny_params, tmp_path):
    run_training(tiny_params)
    uninterrupted = weights(OUT.generator), weights(OUT.discriminator)
    first_run = json.loads(OUT.run_record.read_text())["run_id"]
    for path in (OUT.generator, OUT.discriminator, OUT.run_record):
        path.unlink()

    with pytest.raises(Interrupt):
        run_training(tiny_params, on_epoch_end=interrupt_after(1))
    assert OUT.checkpoint.is_file() and not OUT.generator.exists()
    interrupted_run = json.loads(OUT.run_record.read_text())["run_id"]
    history = run_training(tiny_params)

    assert [row["epoch"] for row in history] == [1, 2]
    for expected, path in zip(uninterrupted, (OUT.generator, OUT.discriminator)):
        resumed = weights(path)
        assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    record = json.loads(OUT.run_record.read_text())
    assert record["run_id"] == interrupted_run != first_run  # the resumed run continues its own
    client = mlflow.MlflowClient(record["tracking_uri"])
    assert [m.step for m in client.get_metric_history(interrupted_run, "d_loss")] == [1, 2]
    assert client.get_run(interrupted_run).data.tags["resumed_after_epoch.1"] == "nothing"


def run_interrupted_after_epoch_1(params) -> tuple[str, str]:
    """Train until epoch 1 is checkpointed, then stop; the MLflow run's id and its git.commit."""
    with pytest.raises(Interrupt):
        run_training(params, on_epoch_end=interrupt_after(1))
    run_id = json.loads(OUT.run_record.read_text())["run_id"]
    return run_id, mlflow.get_run(run_id).data.tags["git.commit"]


def pretend_commit(monkeypatch, commit: str) -> None:
    git_state = repository.git_state
    monkeypatch.setattr("advnets.provenance.repository.git_state", lambda root: {**git_state(root), "git.commit": commit})


def test_a_resume_with_other_code_keeps_what_changed_and_says_so(workdir, tiny_params, monkeypatch, capsys):
    run_id, first_commit = run_interrupted_after_epoch_1(tiny_params)
    pretend_commit(monkeypatch, "c0ffee")
    run_training(tiny_params)

    tags = mlflow.get_run(run_id).data.tags
    assert tags["git.commit"] == "c0ffee"  # the lineage tags name the last session
    assert tags["resumed_after_epoch.1"] == f"git.commit: {first_commit} -> c0ffee"  # the change is kept
    assert f"warning: resuming after epoch 1 with another lineage than the run's previous session: git.commit: {first_commit} -> c0ffee" in capsys.readouterr().out
    text = format_text(run_lineage(workdir, run_id))
    assert f"resumed after epoch 1: git.commit: {first_commit} -> c0ffee" in text
    assert run_lineage_record(mlflow.get_run(run_id))["resumes"] == [{"epoch": 1, "changes": f"git.commit: {first_commit} -> c0ffee"}]


def test_a_resume_compares_the_stages_dependencies_not_its_outputs_and_keeps_every_change(workdir, tiny_params, monkeypatch):
    code, output = workdir / "code.py", workdir / "log.txt"
    (workdir / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python code.py\n    deps: [code.py]\n    outs: [log.txt]\n")
    code.write_text("v1")
    output.write_text("first")
    run_id, first_commit = run_interrupted_after_epoch_1(tiny_params)
    md5s = {text: hashlib.md5(text.encode()).hexdigest() for text in ("v1", "v2")}

    code.write_text("v2")
    output.write_text("second")  # an output changes as a run goes on: not a change of lineage
    with monkeypatch.context() as patch:  # this session stops before it checkpoints an epoch
        patch.setattr("advnets.gan.trainer.Trainer.train_epoch", lambda self: (_ for _ in ()).throw(Interrupt()))
        with pytest.raises(Interrupt):
            run_training(tiny_params)
    pretend_commit(monkeypatch, "c0ffee")
    run_training(tiny_params)

    first_change = f"dvc.md5.code.py: {md5s['v1']} -> {md5s['v2']}"
    assert mlflow.get_run(run_id).data.tags["resumed_after_epoch.1"] == f"{first_change}; then git.commit: {first_commit} -> c0ffee"


def test_an_epoch_checkpointed_but_not_logged_is_logged_on_resume(workdir, tiny_params, monkeypatch):
    log_metrics = mlflow.log_metrics

    def killed_before_logging_epoch_1(metrics, step=None, **kwargs):
        if step == 1:
            raise Interrupt  # the checkpoint of epoch 1 is saved, its metrics are not
        log_metrics(metrics, step=step, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("advnets.provenance.training_log.mlflow.log_metrics", killed_before_logging_epoch_1)
        with pytest.raises(Interrupt):
            run_training(tiny_params)
    assert torch.load(OUT.checkpoint, weights_only=True)["state"]["epoch"] == 1
    run_training(tiny_params)
    record = json.loads(OUT.run_record.read_text())
    client = mlflow.MlflowClient(record["tracking_uri"])
    assert [m.step for m in client.get_metric_history(record["run_id"], "d_loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(record["run_id"], "select.valid_ll")] == [1, 2]


def test_resuming_a_run_deleted_from_the_store_is_refused_with_the_way_out(workdir, tiny_params):
    with pytest.raises(Interrupt):
        run_training(tiny_params, on_epoch_end=interrupt_after(1))
    record = json.loads(OUT.run_record.read_text())
    mlflow.MlflowClient(record["tracking_uri"]).delete_run(record["run_id"])
    with pytest.raises(ResumeError, match=f"continues MLflow run {record['run_id']}.*rm models/checkpoint.pt"):
        run_training(tiny_params)
    assert OUT.checkpoint.is_file()  # nothing lost: restore the run, or remove the checkpoint


def test_resume_with_changed_params_is_refused_naming_the_keys(workdir, raw_params):
    with pytest.raises(Interrupt):
        run_training(validate(override(raw_params, TINY)), on_epoch_end=interrupt_after(1))
    changed = validate(override(raw_params, {"train": {"lr": 0.05, "seed": 3}}))
    with pytest.raises(ResumeError, match=r"train\.lr: 0\.1 -> 0\.05, train\.seed: 0 -> 3.*rm models/checkpoint\.pt"):
        run_training(changed)


def test_more_epochs_continue_the_same_run(workdir, raw_params):
    with pytest.raises(Interrupt):
        run_training(validate(override(raw_params, TINY)), on_epoch_end=interrupt_after(1))
    longer = validate(override(raw_params, {"train": {"epochs": 3}}))
    assert [row["epoch"] for row in run_training(longer)] == [1, 2, 3]
    run = mlflow.get_run(json.loads(OUT.run_record.read_text())["run_id"])
    assert run.data.params["train.epochs"] == "3"  # as the run ended, not as it began


def test_a_run_that_logged_its_length_as_it_began_keeps_it_and_says_so(workdir, raw_params, capsys):
    with pytest.raises(Interrupt):
        run_training(validate(override(raw_params, TINY)), on_epoch_end=interrupt_after(1))
    run_id = json.loads(OUT.run_record.read_text())["run_id"]
    mlflow.MlflowClient().log_param(run_id, "train.epochs", "2")  # as runs begun by older code did
    run_training(validate(override(raw_params, {"train": {"epochs": 3}})))
    assert mlflow.get_run(run_id).data.params["train.epochs"] == "2"  # write-once: the run still ends
    assert f"warning: run {run_id} keeps train.epochs=2, logged as it began (now 3)" in capsys.readouterr().out


def test_the_lineage_is_the_code_as_loaded_and_the_outputs_as_written(workdir, tiny_params):
    (workdir / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python code.py\n    deps: [code.py]\n    outs: [models/generator.pt]\n")
    code = workdir / "code.py"
    code.write_text("v1")

    def edit_the_code(trainer):  # e.g. a commit checked out while a long run goes on
        code.write_text("v2")

    run_training(tiny_params, on_epoch_end=edit_the_code)
    tags = mlflow.get_run(json.loads(OUT.run_record.read_text())["run_id"]).data.tags
    assert tags["dvc.md5.code.py"] == hashlib.md5(b"v1").hexdigest()  # what this process ran
    assert tags["dvc.md5.models/generator.pt"] == hashlib.md5(OUT.generator.read_bytes()).hexdigest()


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(workdir, tiny_params):
    def poison(trainer):
        with torch.no_grad():
            next(trainer.nets.discriminator.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteError, match="epoch 2"):
        run_training(tiny_params, on_epoch_end=poison)
    saved = torch.load(OUT.checkpoint, weights_only=True)
    assert saved["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["state"]["discriminator"].values())
    assert not OUT.generator.exists()


def test_a_run_that_d_has_won_says_so_once_and_is_tagged(workdir, raw_params, capsys):
    def d_rejects_everything(trainer):  # a logit of -50 for every input: D(G(z)) ~ 0 next epoch
        if trainer.epoch == 1:
            with torch.no_grad():
                trainer.nets.discriminator[-1].bias.fill_(-50.0)

    params = validate(override(override(raw_params, TINY), {"train": {"epochs": 3}}))
    rows = run_training(params, on_epoch_end=d_rejects_everything)
    assert rows[0]["d_fake"] > 0.01 and all(row["d_fake"] < 0.01 for row in rows[1:])
    out = capsys.readouterr().out
    assert out.count("D has won") == 1 and "epoch 2: D has won: mean D(G(z)) over the epoch was" in out
    record = json.loads(OUT.run_record.read_text())
    assert mlflow.MlflowClient(record["tracking_uri"]).get_run(record["run_id"]).data.tags["d_won_at_epoch"] == "2"


def test_a_users_tracking_uri_is_honoured_and_recorded(workdir, tiny_params, tmp_path, empty_mlflow_store):
    store = tmp_path / "elsewhere.db"
    shutil.copy(empty_mlflow_store, store)
    uri = f"sqlite:///{store}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", uri)
        run_training(tiny_params)
        record = json.loads(OUT.run_record.read_text())
        assert record["tracking_uri"] == uri
        assert mlflow.MlflowClient(uri).get_run(record["run_id"]).info.status == "FINISHED"
