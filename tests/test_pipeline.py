"""dvc.yaml end to end: stages run under `dvc repro` in a fresh copy of the repository."""

from dvc.repo import Repo

from advnets.data import load_mnist
from conftest import REPO


def test_stages_declare_their_scripts_and_params():
    stages = {stage.name: stage for stage in Repo(str(REPO)).index.stages}
    assert "download" in stages
    for stage in stages.values():
        assert any(str(dep).startswith("stages/") for dep in stage.deps), stage.name


def test_download_stage_prepares_splits_and_a_second_repro_runs_nothing(pipeline):
    pipeline.repro("download")
    assert load_mnist("valid", pipeline.root / "data")[0].shape == (10_000, 784)
    outs = pipeline.lock()["stages"]["download"]["outs"]
    assert [(out["path"], out["nfiles"]) for out in outs] == [("data/mnist", 3)]
    mtime = (pipeline.root / "data" / "mnist" / "train.pt").stat().st_mtime_ns

    second = pipeline.repro()
    assert "didn't change, skipping" in second and "Running stage" not in second
    assert (pipeline.root / "data" / "mnist" / "train.pt").stat().st_mtime_ns == mtime


def test_invalid_params_stop_the_stage_with_the_key_named(pipeline):
    pipeline.set_params(data={"valid_size": -5})
    result = pipeline.run_unchecked("dvc", "repro", "download")
    assert result.returncode != 0
    assert "data.valid_size: input should be greater than 0, got -5" in result.stderr + result.stdout
    assert not (pipeline.root / "data" / "mnist").exists()
