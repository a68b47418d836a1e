"""MNIST: download (or copy from a local mirror), verify, and split as the paper did.

Splits (docs/fidelity.md, "MNIST setup"): train = the first 50,000 official training images in file
order, valid = the last 10,000, test = the official 10,000. Pixels are stored as uint8 and served
by `load_mnist` as float32 in [0, 1], shape [N, 784].
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from advnets.atomic import disk_full, md5_of, staged_dir
from advnets.errors import AdvnetsError

MIRROR_ENV = "ADVNETS_MNIST_MIRROR"
SPLITS = ("train", "valid", "test")
DOWNLOAD_TIMEOUT_S = 30

# md5 of the *decompressed* IDX files: the same for the public files and for any recompressed
# mirror of them.
CONTENT_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class ChecksumError(AdvnetsError):
    """A downloaded or mirrored file is corrupt, truncated or not the expected one."""


class DownloadError(AdvnetsError):
    """MNIST could not be fetched from any public mirror."""


class MissingDataError(AdvnetsError, FileNotFoundError):
    """A prepared split is not there yet."""


class MirrorError(AdvnetsError, FileNotFoundError):
    """The configured local mirror folder is missing or incomplete."""


def resolve_mirror(
    configured: str | None, env: str = MIRROR_ENV, dataset: str = "MNIST", param: str = "data.mirror"
) -> Path | None:
    """A dataset's local mirror folder: the environment variable wins over the configured path
    (for MNIST, $ADVNETS_MNIST_MIRROR over params' data.mirror)."""
    chosen = os.environ.get(env) or configured
    if not chosen:
        return None
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise MirrorError(f"{dataset} mirror {folder} is not a folder (from ${env} or {param})")
    return folder


def _public_sources() -> list[tuple[list[str], str, str]]:
    """(urls, file name, md5 of the .gz) for each file, from torchvision's own list of mirrors."""
    from torchvision.datasets import MNIST

    return [([m + name for m in MNIST.mirrors], name, md5) for name, md5 in MNIST.resources]


@contextlib.contextmanager
def download_timeout() -> Iterator[None]:
    """An unreachable host fails within DOWNLOAD_TIMEOUT_S instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def download(dest: Path) -> dict[str, Path]:
    """Fetch the four public .gz files into dest, each checked against torchvision's md5."""
    from torchvision.datasets.utils import download_url

    fetched: dict[str, Path] = {}
    with download_timeout():
        for urls, name, gz_md5 in _public_sources():
            errors = []
            for url in urls:
                try:
                    download_url(url, str(dest), filename=name)
                    break
                except OSError as exc:  # URLError, HTTPError, timeouts
                    errors.append(f"{url}: {exc}")
                    (dest / name).unlink(missing_ok=True)  # else the next mirror would skip it
            else:
                raise DownloadError(
                    f"could not download {name}:\n  " + "\n  ".join(errors) + "\n"
                    f"Without internet, point ${MIRROR_ENV} (or data.mirror in params.yaml) at a "
                    "folder holding the four MNIST .gz files."
                )
            path = dest / name
            _check_md5(path, gz_md5, md5_of(path))
            fetched[name.removesuffix(".gz")] = path
    return fetched


def from_mirror(mirror: Path) -> dict[str, Path]:
    """The four .gz files of a local mirror (verified after decompression)."""
    files = {name: mirror / f"{name}.gz" for name in CONTENT_MD5}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise MirrorError("MNIST mirror lacks: " + ", ".join(missing))
    return files


def _check_md5(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise ChecksumError(f"{path}: corrupt or wrong file: md5 expected {expected}, got {actual}")


def decompress_verified(gz_path: Path, out_path: Path, expected_md5: str) -> None:
    """Gunzip with a progress bar, checking the md5 of the decompressed content. A file that
    cannot be read is corrupt; one that cannot be written is the output's fault (a full disk)."""
    digest = hashlib.md5()
    with open(out_path, "wb") as dst, tqdm(desc=f"decompress {gz_path.name}", unit="B", unit_scale=True, leave=False) as bar:
        with gzip.open(gz_path, "rb") as src:
            while True:
                try:
                    block = src.read(1 << 20)
                except (OSError, EOFError, zlib.error) as exc:  # bad CRC, truncated stream, not gzip
                    raise ChecksumError(
                        f"{gz_path}: corrupt or truncated gzip ({exc}); md5 of content expected {expected_md5}, "
                        "got none (unreadable)"
                    ) from None
                if not block:
                    break
                digest.update(block)
                try:
                    dst.write(block)
                    dst.flush()
                except OSError as exc:
                    raise disk_full(exc, out_path) or exc
                bar.update(len(block))
    _check_md5(gz_path, expected_md5, digest.hexdigest())


def _read_idx(raw: dict[str, Path], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    images = read_image_file(str(raw[f"{kind}-images-idx3-ubyte"])).reshape(-1, 28 * 28)
    labels = read_label_file(str(raw[f"{kind}-labels-idx1-ubyte"])).long()
    return images.contiguous(), labels


def prepare_mnist(out_dir: str | Path, mirror: Path | None, train_size: int, valid_size: int) -> None:
    """Write out_dir/{train,valid,test}.pt; nothing is left behind if any step fails."""
    with staged_dir(out_dir) as (work, staged):
        gz_files = from_mirror(mirror) if mirror else download(work)
        raw = {}
        for name, gz_path in gz_files.items():
            raw[name] = work / name
            decompress_verified(gz_path, raw[name], CONTENT_MD5[name])

        train_images, train_labels = _read_idx(raw, "train")
        test_images, test_labels = _read_idx(raw, "t10k")
        splits = {
            "train": (train_images[:train_size], train_labels[:train_size]),
            "valid": (train_images[-valid_size:], train_labels[-valid_size:]),
            "test": (test_images, test_labels),
        }
        for split, (images, labels) in splits.items():
            torch.save({"images": images.clone(), "labels": labels.clone()}, staged / f"{split}.pt")


def load_split(root: str | Path, dataset: str, split: str, how_to_prepare: str) -> dict[str, torch.Tensor]:
    """The stored tensors of root/dataset/split.pt, or an error saying how to prepare them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = Path(root) / dataset / f"{split}.pt"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: {how_to_prepare}")
    return torch.load(path, weights_only=True)


def load_mnist(split: str, root: str | Path = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 784] in [0, 1], labels int64 [N]) of a prepared split."""
    stored = load_split(root, "mnist", split, "run `dvc repro download` first")
    return stored["images"].float().div_(255.0), stored["labels"]
