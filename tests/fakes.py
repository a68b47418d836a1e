"""Small stand-ins shared by the test tiers: data files shaped like the real ones, runs in an MLflow
store, an interruptible training. Import with `from fakes import ...` (tests/ is on the path)."""

import io
import math
import pickle
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
import torch

from advnets.atomic import md5_of

PER_BATCH = 6  # images per CIFAR-10 batch file in write_archive
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_archive(folder: Path) -> dict[str, str]:
    """cifar-10-python.tar.gz in folder; in batch k, image `row` has random pixels except the
    first, k*10 + row. Returns the batch files' md5s."""
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for k, name in enumerate(BATCHES):
            data = np.random.default_rng(k).integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
            data[:, 0] = k * 10 + np.arange(PER_BATCH)
            payload = pickle.dumps({"batch_label": name, "data": data, "labels": [k] * PER_BATCH}, protocol=2)
            scratch = folder / name
            scratch.write_bytes(payload)
            md5s[name] = md5_of(scratch)
            scratch.unlink()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return md5s


N = 20  # images in write_mat's TFD file


def write_mat(path, **changes):
    """A TFD_48x48.mat with the real file's fields. images: image i has every pixel equal to i;
    folds: fold f gives image i the role (i + f) % 4."""
    fields = {
        "images": np.repeat(np.arange(N, dtype=np.uint8)[:, None, None], 48, axis=1).repeat(48, axis=2),
        "folds": np.array([[(i + f) % 4 for f in range(5)] for i in range(N)], dtype=np.uint8),
        "labs_ex": np.full((N, 1), -1, dtype=np.int16),
        "labs_id": np.zeros((N, 1), dtype=np.int32),
    }
    fields.update(changes)
    scipy.io.savemat(path, {k: v for k, v in fields.items() if v is not None})
    return path


class Interrupt(Exception):
    pass


def interrupt_after(epoch):
    """An on_epoch_end hook that stops training once `epoch` is done (its checkpoint saved)."""

    def hook(trainer):
        if trainer.epoch == epoch:
            raise Interrupt

    return hook


def log_training(params, score, status="FINISHED", curve=None, seconds=(), d_fake=(), **tags):
    """A training run in the store; curve: {epoch: validation score} as the selection logs it;
    seconds and d_fake (mean D(G(z))): each epoch's, as the train stage logs them."""
    import mlflow

    from advnets.provenance import tracking

    experiment = tracking.experiment_id(params.tracking.experiment, tracking.repo_root())
    with mlflow.start_run(experiment_id=experiment) as run:
        tracking.log_flat_params(params.flat("data", "model", "train", "select", "sample", "parzen"))
        mlflow.set_tags({"DVC_STAGE": "train", **tags})
        for epoch, value in (curve or {}).items():
            mlflow.log_metric("select.valid_ll", value, step=epoch)
        for epoch, value in enumerate(seconds, start=1):
            mlflow.log_metric("seconds", value, step=epoch)
        for epoch, value in reversed(list(enumerate(d_fake, start=1))):  # the last epoch is the latest step, not the latest logged
            mlflow.log_metric("d_fake", value, step=epoch)
        if score is not None:
            mlflow.log_metric("parzen.test_ll_mean", score)
            mlflow.log_metric("parzen.test_ll_se", 2.0)
    if status != "FINISHED":
        mlflow.MlflowClient().set_terminated(run.info.run_id, status)
    return run.info.run_id


def brute_force(points, samples, sigma):
    """The Parzen log-likelihood in float64, direct differences, one point at a time."""
    points, samples = points.double(), samples.double()
    exponents = torch.stack([-((x - samples) ** 2).sum(dim=1) / (2 * sigma**2) for x in points])
    d = points.shape[1]
    return torch.logsumexp(exponents, dim=1) - math.log(len(samples)) - d * math.log(sigma * math.sqrt(2 * math.pi))
