"""CIFAR-10: download (or copy from a local mirror), verify, split and contrast-normalise as the
official code did (docs/fidelity.md, "Other datasets"; cifar10_fully_connected.yaml).

Splits: train = the first 40,000 training images (data_batch_1 to 4, in file order), valid = the
last 10,000 (data_batch_5), test = test_batch. Images are stored as uint8 [N, 3072] in the
archive's order (the red plane, then green, then blue, each row-major 32 x 32); `load_cifar10`
serves them globally contrast-normalised as float32 (`global_contrast_normalize`).
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path

import torch

from advnets.atomic import md5_of, staged_dir
from advnets.data import mnist as data
from advnets.data.mnist import ChecksumError, DownloadError, MirrorError
from advnets.errors import AdvnetsError

MIRROR_ENV = "ADVNETS_CIFAR10_MIRROR"
GCN_SCALE = 55.0  # the yaml's `gcn: 55.`
SPLIT_BATCHES = {
    "train": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"],
    "valid": ["data_batch_5"],
    "test": ["test_batch"],
}


def _torchvision_cifar10():
    from torchvision.datasets import CIFAR10

    return CIFAR10


def batch_md5s() -> dict[str, str]:
    """md5 of each extracted batch file, from torchvision's CIFAR-10 dataset."""
    cifar = _torchvision_cifar10()
    return dict(cifar.train_list + cifar.test_list)


def resolve_mirror(configured: str | None) -> Path | None:
    """A folder holding cifar-10-python.tar.gz: $ADVNETS_CIFAR10_MIRROR wins over the argument."""
    return data.resolve_mirror(configured, MIRROR_ENV, "CIFAR-10", "the mirror argument")


def fetch_archive(dest: Path, mirror: Path | None) -> Path:
    """The archive from the mirror, else downloaded into dest from the public source."""
    cifar = _torchvision_cifar10()
    if mirror is not None:
        archive = mirror / cifar.filename
        if not archive.is_file():
            raise MirrorError(f"CIFAR-10 mirror lacks {archive}")
        return archive
    from torchvision.datasets.utils import download_url

    try:
        with data.download_timeout():
            download_url(cifar.url, str(dest), filename=cifar.filename, md5=cifar.tgz_md5)
    except OSError as exc:
        raise DownloadError(
            f"could not download {cifar.url}: {exc}\nWithout internet, point ${MIRROR_ENV} at a folder "
            f"holding {cifar.filename}."
        ) from None
    except RuntimeError as exc:  # torchvision's md5 check after the download
        raise ChecksumError(f"{cifar.url}: {exc} (md5 expected {cifar.tgz_md5})") from None
    return dest / cifar.filename


def _extract(archive: Path, dest: Path) -> Path:
    base = _torchvision_cifar10().base_folder
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: no absolute paths or links out of dest
                tar.extractall(dest, filter="data")
            else:
                tar.extractall(dest)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ChecksumError(f"{archive}: corrupt or truncated archive ({exc})") from None
    except OSError as exc:  # disk full, permissions: the archive may be fine
        raise AdvnetsError(f"could not extract {archive} into {dest}: {exc}") from None
    folder = dest / base
    if not folder.is_dir():
        raise ChecksumError(f"{archive}: no {base}/ folder inside: not the CIFAR-10 python archive")
    return folder


def _read_batch(path: Path, expected_md5: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not path.is_file():
        raise ChecksumError(f"{path.name} missing from the archive")
    actual = md5_of(path)
    if actual != expected_md5:
        raise ChecksumError(f"{path.name}: corrupt or wrong file: md5 expected {expected_md5}, got {actual}")
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")  # the batches are Python 2 pickles
    images = torch.as_tensor(batch["data"], dtype=torch.uint8).reshape(-1, 3072)
    return images, torch.as_tensor(batch["labels"], dtype=torch.int64)


def prepare_cifar10(out_dir: str | Path, mirror: Path | None, expected_md5: dict[str, str] | None = None) -> None:
    """Write out_dir/{train,valid,test}.pt from the archive, every batch file checked against its
    md5 (torchvision's unless `expected_md5` is given); nothing is left behind if a step fails."""
    expected_md5 = expected_md5 or batch_md5s()
    with staged_dir(out_dir) as (work, staged):
        folder = _extract(fetch_archive(work, mirror), work / "extracted")
        for split, names in SPLIT_BATCHES.items():
            batches = [_read_batch(folder / name, expected_md5[name]) for name in names]
            images, labels = (torch.cat(parts) for parts in zip(*batches))
            torch.save({"images": images, "labels": labels}, staged / f"{split}.pt")


def global_contrast_normalize(images: torch.Tensor, scale: float = GCN_SCALE, min_divisor: float = 1e-8) -> torch.Tensor:
    """pylearn2's global_contrast_normalize(X, scale) with its defaults: each row minus its mean,
    divided by its L2 norm / scale (a divisor below min_divisor counts as 1, so blank images stay 0)."""
    centred = images.to(torch.float64, copy=True)
    centred -= centred.mean(dim=1, keepdim=True)
    divisor = centred.square().sum(dim=1).sqrt() / scale
    divisor[divisor < min_divisor] = 1.0
    return (centred / divisor.unsqueeze(1)).float()


def load_cifar10(split: str, root: str | Path = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 3072], contrast-normalised; labels int64 [N]) of a prepared split."""
    stored = data.load_split(root, "cifar10", split, "prepare CIFAR-10 first")
    return global_contrast_normalize(stored["images"]), stored["labels"]
