"""The summary commands against a store that does not exist, or holds nothing of the kind."""

import shutil

import pytest

from advnets.cli import main
from conftest import REPO


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A checkout as git gives it: params.yaml and the committed summaries, no MLflow store."""
    (tmp_path / "metrics").mkdir()
    for name in ("params.yaml", "metrics/seeds.json", "metrics/variants.json"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.parametrize("command", [["seeds"], ["variants"], ["publish", "--run", "0123abcd"]])
def test_a_missing_store_is_refused_and_neither_created_nor_summarised(clone, command, capsys):
    committed = {name: (clone / name).read_bytes() for name in ("metrics/seeds.json", "metrics/variants.json")}
    assert main([*command, "--root", str(clone)]) == 2
    message = f"no MLflow store at sqlite:///{clone / 'mlflow.db'} (from the project's default): a fresh clone has none"
    assert message in capsys.readouterr().err
    assert not (clone / "mlflow.db").exists()
    assert {name: (clone / name).read_bytes() for name in committed} == committed


@pytest.mark.parametrize("command, out", [("seeds", "metrics/seeds.json"), ("variants", "metrics/variants.json")])
def test_a_summary_that_finds_no_run_keeps_the_file(clone, empty_mlflow_store, command, out, capsys):
    shutil.copy(empty_mlflow_store, clone / "mlflow.db")
    committed = (clone / out).read_bytes()
    assert main([command, "--root", str(clone)]) == 1
    printed = capsys.readouterr()
    assert f"{out}" in printed.err and "left as they were" in printed.err and printed.out == ""
    assert (clone / out).read_bytes() == committed


def test_the_refusal_names_where_the_store_came_from(clone, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{clone / 'typo.db'}")
    assert main(["seeds", "--root", str(clone)]) == 2
    assert f"no MLflow store at sqlite:///{clone / 'typo.db'} (from MLFLOW_TRACKING_URI)" in capsys.readouterr().err
