import json
import shutil

import mlflow
import pytest

from advnets.atomic import md5_of
from advnets.data.mnist import load_mnist
from advnets.gan.sampling import save_samples
from advnets.params import validate
from advnets.parzen import PixelRangeError, log_likelihood
from advnets.pipeline.parzen import ParzenFiles, run_parzen
from advnets.provenance import tracking
from conftest import REPO, override

FILES = ParzenFiles()
SMALL = {"parzen": {"valid_points": 50, "test_points": 100, "baseline_samples": 300}, "select": {"valid_points": 200}}


@pytest.fixture
def training_run(workdir):
    """An MLflow run standing in for the train stage's, named in models/mlflow-run.json."""
    experiment = tracking.experiment_id("advnets-mnist", workdir)
    with mlflow.start_run(experiment_id=experiment) as run:
        tracking.write_run_record(FILES.run_record, run, workdir)
    return run.info.run_id


def test_metrics_baselines_and_the_mlflow_run(workdir, training_run, raw_params):
    shutil.copy(REPO / "dvc.yaml", workdir)  # the stage's files, for the lineage tags
    params = validate(override(raw_params, SMALL))
    train_images = load_mnist("train")[0]
    samples, real = train_images[1000:1400], train_images[:300]
    save_samples(FILES.samples, samples)
    metrics = run_parzen(params)

    written = json.loads(FILES.metrics.read_text())
    assert written == json.loads(json.dumps(metrics))
    for key in ("sigma", "test_ll_mean", "test_ll_se", "valid_ll_by_sigma", "n_samples", "n_test", "seconds"):
        assert key in written
    assert (written["n_samples"], written["n_test"]) == (400, 100)
    assert written["sigma"] == max(params.parzen.sigmas, key=lambda s: written["valid_ll_by_sigma"][str(s)])
    baselines = written["baselines"]
    assert baselines["paper_table1"]["Adversarial nets"] == {"mean": 225.0, "se": 2.0}
    assert baselines["real_training_images"]["n_samples"] == 300
    assert FILES.sigma_sweep.read_text().splitlines()[0] == "sigma,valid_ll,valid_ll_real_images"
    # the validation images the checkpoint selection scores (after the 50 that choose sigma), at
    # each one's chosen sigma: the samples' and the real images' figures beside their test ones
    selection_images = load_mnist("valid")[0][50:250]
    for scored, scored_samples in ((written, samples), (baselines["real_training_images"], real)):
        expected = log_likelihood(selection_images, scored_samples, scored["sigma"]).mean().item()
        assert scored["selection_ll_mean"] == pytest.approx(expected) and scored["n_selection"] == 200

    client = mlflow.MlflowClient()
    run = client.get_run(training_run)  # the model's row: its Parzen score beside its params
    assert run.data.metrics["parzen.test_ll_mean"] == pytest.approx(written["test_ll_mean"])
    assert run.data.metrics["parzen.selection_ll_mean"] == pytest.approx(written["selection_ll_mean"])
    assert run.data.params["parzen.valid_points"] == "50"
    assert {a.path for a in client.list_artifacts(training_run, "parzen")} == {
        "parzen/parzen.json", "parzen/parzen_sigmas.csv"}
    (stage_run,) = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{training_run}'")
    tags = stage_run.data.tags
    assert (stage_run.info.run_name, tags["DVC_STAGE"]) == ("parzen", "parzen")
    assert tags["dvc.md5.data/samples.npy"] == written["samples_md5"]
    assert tags["dvc.md5.metrics/parzen.json"] == md5_of(FILES.metrics)
    assert stage_run.data.params["parzen.test_points"] == "100"
    assert stage_run.data.metrics["parzen.test_ll_mean"] == pytest.approx(written["test_ll_mean"])


def test_samples_on_the_wrong_scale_are_refused(workdir, training_run, raw_params):
    save_samples(FILES.samples, load_mnist("train")[0][:100] * 2 - 1)
    with pytest.raises(PixelRangeError):
        run_parzen(validate(override(raw_params, SMALL)))
    assert not FILES.metrics.exists()
