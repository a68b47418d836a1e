"""CIFAR-10 on a small archive written by the test in the real format (Python pickles of
{'data': uint8 [n, 3072], 'labels': [n]} in cifar-10-batches-py/ inside a .tar.gz)."""

import tarfile

import numpy as np
import pytest
import torch

from advnets.data import cifar10
from advnets.data.mnist import ChecksumError, DownloadError, MirrorError, MissingDataError
from advnets.errors import AdvnetsError
from fakes import PER_BATCH, write_archive


@pytest.fixture
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    return folder, write_archive(folder)


def test_splits_follow_the_official_code(tmp_path, mirror):
    folder, md5s = mirror
    cifar10.prepare_cifar10(tmp_path / "data" / "cifar10", folder, md5s)
    sizes = {}
    for split, first_batch in (("train", 0), ("valid", 4), ("test", 5)):
        stored = torch.load(tmp_path / "data" / "cifar10" / f"{split}.pt", weights_only=True)
        sizes[split] = len(stored["images"])
        assert stored["images"].dtype == torch.uint8 and stored["images"].shape[1] == 3072
        assert stored["images"][0, 0] == first_batch * 10 and stored["labels"][0] == first_batch
    assert sizes == {"train": 4 * PER_BATCH, "valid": PER_BATCH, "test": PER_BATCH}
    train = torch.load(tmp_path / "data" / "cifar10" / "train.pt", weights_only=True)
    assert train["labels"].tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6  # batches 1-4 in file order


def test_a_batch_with_the_wrong_md5_is_refused_and_nothing_is_written(tmp_path, mirror):
    folder, md5s = mirror
    with pytest.raises(ChecksumError, match="data_batch_3: corrupt or wrong file"):
        cifar10.prepare_cifar10(tmp_path / "data" / "cifar10", folder, {**md5s, "data_batch_3": "0" * 32})
    assert not (tmp_path / "data" / "cifar10").exists()
    assert [p.name for p in (tmp_path / "data").iterdir()] == []  # no scratch folder left either


# The batch files of the published cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)
PUBLISHED_MD5S = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


def test_the_real_md5s_come_from_torchvision():
    assert cifar10.batch_md5s() == PUBLISHED_MD5S


def test_a_truncated_archive_is_refused(tmp_path, mirror):
    folder, md5s = mirror
    archive = folder / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(ChecksumError, match="corrupt or truncated archive"):
        cifar10.prepare_cifar10(tmp_path / "cifar10", folder, md5s)


def test_a_mirror_without_the_archive_names_it(tmp_path):
    with pytest.raises(MirrorError, match="cifar-10-python.tar.gz"):
        cifar10.prepare_cifar10(tmp_path / "cifar10", tmp_path)


def test_mirror_from_the_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(cifar10.MIRROR_ENV, str(tmp_path))
    assert cifar10.resolve_mirror("/elsewhere") == tmp_path
    monkeypatch.setenv(cifar10.MIRROR_ENV, str(tmp_path / "absent"))
    with pytest.raises(MirrorError, match="not a folder"):
        cifar10.resolve_mirror(None)


def test_a_failed_download_says_how_to_work_offline(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", unreachable)
    with pytest.raises(DownloadError, match=cifar10.MIRROR_ENV):
        cifar10.prepare_cifar10(tmp_path / "cifar10", None)


def test_global_contrast_normalisation_matches_pylearn2s_formula():
    images = torch.randint(0, 256, (5, 3072), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images[4] = 7  # a blank image: its divisor is below min_divisor and counts as 1
    out = cifar10.global_contrast_normalize(images)
    x = images.numpy().astype(np.float64)
    x -= x.mean(axis=1)[:, None]
    divisor = np.sqrt((x**2).sum(axis=1)) / 55.0
    divisor[divisor < 1e-8] = 1.0
    np.testing.assert_allclose(out.numpy(), x / divisor[:, None], rtol=1e-6, atol=1e-6)
    assert torch.allclose(out[:4].norm(dim=1), torch.full((4,), 55.0))
    assert torch.all(out[4] == 0)


def test_load_serves_normalised_images_and_asks_for_preparation_first(tmp_path, mirror):
    folder, md5s = mirror
    with pytest.raises(MissingDataError, match="prepare CIFAR-10 first"):
        cifar10.load_cifar10("train", tmp_path / "data")
    cifar10.prepare_cifar10(tmp_path / "data" / "cifar10", folder, md5s)
    images, labels = cifar10.load_cifar10("valid", tmp_path / "data")
    assert images.dtype == torch.float32 and images.shape == (PER_BATCH, 3072) and labels.tolist() == [4] * 6
    assert torch.allclose(images.mean(dim=1), torch.zeros(PER_BATCH), atol=1e-5)
    assert torch.allclose(images.norm(dim=1), torch.full((PER_BATCH,), 55.0))


def test_a_disk_error_while_extracting_is_not_called_corruption(tmp_path, mirror, monkeypatch):
    folder, md5s = mirror

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", disk_full)
    with pytest.raises(AdvnetsError, match="could not extract.*No space left") as raised:
        cifar10.prepare_cifar10(tmp_path / "cifar10", folder, md5s)
    assert not isinstance(raised.value, ChecksumError)
