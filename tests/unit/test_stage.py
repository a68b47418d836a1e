"""A stage's faults end in one line (advnets.pipeline.stage.run_stage), never a traceback, except a bug's."""

import errno

import mlflow
import pytest

from advnets.atomic import DiskFullError, pending, write_text
from advnets.errors import AdvnetsError
from advnets.pipeline.stage import INTERRUPTED, run_stage

pytestmark = pytest.mark.unit


def raising(error: BaseException):
    def main():
        raise error

    return main


@pytest.mark.parametrize(("error", "line"), [
    (AdvnetsError("data/mnist is missing"), "sample: error: data/mnist is missing"),
    (OSError(errno.EACCES, "Permission denied", "models/generator.pt"), "sample: error: Permission denied: models/generator.pt"),
    (DiskFullError(errno.ENOSPC, "no space left to write models/x.pt (4.0 KiB free on its device)"),
     "sample: error: no space left to write models/x.pt (4.0 KiB free on its device)"),
    (mlflow.exceptions.MlflowException("(sqlite3.OperationalError) attempt to write a readonly\n database"),
     "sample: error: the MLflow store at {uri} failed: (sqlite3.OperationalError) attempt to write a readonly database"),
])
def test_a_fault_the_user_can_act_on_ends_the_stage_with_one_line(error, line):
    with pytest.raises(SystemExit) as ended:
        run_stage("sample", raising(error))
    assert ended.value.code == line.format(uri=mlflow.get_tracking_uri())


def test_ctrl_c_ends_with_what_was_kept_and_the_interrupted_status(capsys):
    with pytest.raises(SystemExit) as ended:
        run_stage("train", raising(KeyboardInterrupt()))
    assert ended.value.code == INTERRUPTED == 130
    assert capsys.readouterr().err == (
        "train: interrupted; its outputs are those of the last finished training; `dvc repro` resumes from the "
        "last epoch it checkpointed, if it finished one\n")


@pytest.mark.parametrize("error", [AdvnetsError("refused"), KeyboardInterrupt(), OSError(errno.EIO, "I/O error")])
def test_a_stage_that_fails_leaves_its_previous_outputs(tmp_path, error):
    out = tmp_path / "metrics" / "train.json"
    write_text(out, "the last good run")

    def main():
        write_text(out, "half a run")
        write_text(tmp_path / "models" / "generator.pt", "new")
        raise error

    with pytest.raises(SystemExit):
        run_stage("train", main)
    assert out.read_text() == "the last good run"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["metrics", "metrics/train.json", "models"]


def test_a_stage_that_succeeds_puts_all_its_outputs_in_place(tmp_path):
    def main():
        write_text(tmp_path / "a.json", "new")
        assert not (tmp_path / "a.json").exists()  # held back until the stage has finished
        assert pending(tmp_path / "a.json").read_text() == "new"

    run_stage("train", main)
    assert (tmp_path / "a.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_stage("sample", raising(ZeroDivisionError("a bug")))
    refused = mlflow.exceptions.MlflowException("Invalid value for param", error_code="INVALID_PARAMETER_VALUE")
    with pytest.raises(mlflow.exceptions.MlflowException):  # a bad request is not the store's fault
        run_stage("sample", raising(refused))


def test_ctrl_c_during_a_store_query_is_not_logged_as_a_database_error(capsys):
    """SQLAlchemy logs the failure to close the cursor that Ctrl-C left, with its traceback."""
    import logging

    import advnets.provenance.tracking  # noqa: F401  it filters that log

    def main():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            try:
                raise RuntimeError("Cannot operate on a closed database.")
            except RuntimeError:
                logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Error closing cursor", exc_info=True)
            raise

    with pytest.raises(SystemExit):
        run_stage("train", main)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error closing cursor" not in err and err.startswith("train: interrupted; ")
