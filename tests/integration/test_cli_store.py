"""The summary commands against a store that does not exist, or holds nothing of the kind."""

import json
import shutil

import pytest

from advnets.cli import main


@pytest.mark.parametrize("command, out", [("seeds", "metrics/seeds.json"), ("variants", "metrics/variants.json")])
def test_a_summary_that_finds_no_run_keeps_the_file(clone, empty_mlflow_store, command, out, capsys):
    shutil.copy(empty_mlflow_store, clone / "mlflow.db")
    committed = (clone / out).read_bytes()
    assert main([command, "--root", str(clone)]) == 1
    printed = capsys.readouterr()
    assert f"{out}" in printed.err and "left as they were" in printed.err and printed.out == ""
    assert (clone / out).read_bytes() == committed


@pytest.fixture
def new_store(clone, empty_mlflow_store, monkeypatch):
    """The clone with an empty store of its own, as after losing the one that made its summaries."""
    shutil.copy(empty_mlflow_store, clone / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{clone / 'mlflow.db'}")
    monkeypatch.chdir(clone)
    return clone


def test_a_summary_from_a_new_store_adds_to_the_one_there(new_store, raw_params, capsys):
    from advnets.params import validate
    from advnets.provenance.runs import summarise
    from advnets.report.summaries import config_filter
    from conftest import override
    from fakes import log_training

    def lost(run_id, score, epoch):  # a seed row as `advnets variants` writes it, less what is optional
        return {"seed": 0, "test_ll_mean": score, "run_id": run_id, "selected_epoch": epoch, "git_commit": "0123abc",
                "d_fake_last": 0.43}

    earlier = {"config": config_filter(validate(raw_params)), "variants": [
        {"changes": {}, **summarise([lost("lost0", 180.0, 245)])},
        {"changes": {"train.epochs": "1000"}, **summarise([lost("lost1", 214.0, 975)])},
    ]}
    (new_store / "metrics/variants.json").write_text(json.dumps(earlier))
    new = log_training(validate(override(raw_params, {"train": {"seed": 0, "epochs": 3000}})), 220.0)

    assert main(["variants", "--root", str(new_store)]) == 0
    written = json.loads((new_store / "metrics/variants.json").read_text())
    assert [(row["changes"], [seed["run_id"] for seed in row["seeds"]]) for row in written["variants"]] == [
        ({}, ["lost0"]), ({"train.epochs": "3000"}, [new]), ({"train.epochs": "1000"}, ["lost1"])
    ]
    assert written["not_in_store"] == ["lost0", "lost1"]
    assert "kept 2 seed(s) of the earlier metrics/variants.json" in capsys.readouterr().out

    assert main(["variants", "--root", str(new_store), "--replace"]) == 0
    written = json.loads((new_store / "metrics/variants.json").read_text())
    assert [row["changes"] for row in written["variants"]] == [{"train.epochs": "3000"}] and written["not_in_store"] == []


@pytest.mark.parametrize("command, out", [("seeds", "metrics/seeds.json"), ("variants", "metrics/variants.json")])
def test_a_file_that_is_no_summary_is_refused_and_kept(new_store, command, out, capsys):
    (new_store / out).write_text("<<<<<<< HEAD\n")
    assert main([command, "--root", str(new_store)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert (new_store / out).read_text() == "<<<<<<< HEAD\n"
