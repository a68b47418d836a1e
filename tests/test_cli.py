"""The summary commands against a store that does not exist, or holds nothing of the kind."""

import json
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


def test_a_summary_from_a_new_store_adds_to_the_committed_one(clone, empty_mlflow_store, monkeypatch, raw_params, capsys):
    from test_seeds import log_training

    from advnets.params import validate
    from conftest import override

    shutil.copy(empty_mlflow_store, clone / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{clone / 'mlflow.db'}")
    monkeypatch.chdir(clone)
    committed = json.loads((clone / "metrics/variants.json").read_text())["variants"]
    new = log_training(validate(override(raw_params, {"train": {"seed": 0, "epochs": 3000}})), 220.0)

    assert main(["variants", "--root", str(clone)]) == 0
    table = json.loads((clone / "metrics/variants.json").read_text())["variants"]
    assert [row["changes"] for row in table if row["changes"] != {"train.epochs": "3000"}] == [row["changes"] for row in committed]
    assert [seed["run_id"] for row in table if row["changes"] == {"train.epochs": "3000"} for seed in row["seeds"]] == [new]
    kept = sum(row["n_seeds"] for row in committed)
    assert f"kept {kept} seed(s) of the earlier metrics/variants.json" in capsys.readouterr().out

    assert main(["variants", "--root", str(clone), "--replace"]) == 0
    assert [row["changes"] for row in json.loads((clone / "metrics/variants.json").read_text())["variants"]] == [
        {"train.epochs": "3000"}
    ]
