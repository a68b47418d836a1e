"""The summary commands against a store that does not exist, or holds nothing of the kind."""


import pytest

from advnets.cli import main


@pytest.mark.parametrize("command", [["seeds"], ["variants"], ["publish", "--run", "0123abcd"]])
def test_a_missing_store_is_refused_and_neither_created_nor_summarised(clone, command, capsys):
    committed = {name: (clone / name).read_bytes() for name in ("metrics/seeds.json", "metrics/variants.json")}
    assert main([*command, "--root", str(clone)]) == 2
    message = f"no MLflow store at sqlite:///{clone / 'mlflow.db'} (from the project's default): a fresh clone has none"
    assert message in capsys.readouterr().err
    assert not (clone / "mlflow.db").exists()
    assert {name: (clone / name).read_bytes() for name in committed} == committed


def test_the_refusal_names_where_the_store_came_from(clone, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{clone / 'typo.db'}")
    assert main(["seeds", "--root", str(clone)]) == 2
    assert f"no MLflow store at sqlite:///{clone / 'typo.db'} (from MLFLOW_TRACKING_URI)" in capsys.readouterr().err
