"""TFD, the Toronto Face Database (48 x 48 = 2,304 grey pixels), from a user-supplied
TFD_48x48.mat (docs/fidelity.md, "Other datasets").

TFD is licensed and cannot be downloaded. The file's fields, as pylearn2's TFD dataset reads them:
`images` uint8 [N, 48, 48] and `folds` [N, 5], where column f gives each image's role in fold f:
0 unlabeled, 1 train, 2 valid, 3 test. The official GAN trained on fold 0's unlabeled images with
pixels scaled to [0, 1] (tfd_pretrain/pretrain.yaml: which_set 'unlabeled', scale: True); the
paper's Parzen figure chooses sigma on each fold's valid images, scores its test images, and
reports the mean and standard error across the 5 folds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from advnets.atomic import staged_dir
from advnets.data.mnist import MissingDataError
from advnets.errors import AdvnetsError

FILE_NAME = "TFD_48x48.mat"
SIDE = 48
FOLDS = 5
ROLES = {"unlabeled": 0, "train": 1, "valid": 2, "test": 3}
HOW_TO_GET = (
    "TFD is licensed and not publicly downloadable: request the Toronto Face Database "
    "(Susskind, Anderson & Hinton, 2010) from the University of Toronto, then give the path of "
    f"its {FILE_NAME} to prepare_tfd"
)


class TFDFileError(AdvnetsError):
    """TFD_48x48.mat is missing or is not the file pylearn2 read."""


def read_mat(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 2304], folds int64 [N, 5]) from TFD_48x48.mat, checked."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path).expanduser()
    if not path.is_file():
        raise TFDFileError(f"{path} not found. {HOW_TO_GET}")
    try:
        fields = scipy.io.loadmat(path, variable_names=["images", "folds"])
    except (MatReadError, ValueError, NotImplementedError, OSError) as exc:  # not a .mat, or v7.3 (HDF5)
        raise TFDFileError(f"{path}: not readable as a MATLAB file ({exc}); expected {FILE_NAME}") from None
    missing = [name for name in ("images", "folds") if name not in fields]
    if missing:
        raise TFDFileError(f"{path}: no field {', '.join(missing)}; expected {FILE_NAME} with images and folds")
    images, folds = fields["images"], fields["folds"]
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE) or images.dtype.name != "uint8":
        raise TFDFileError(f"{path}: images must be uint8 [N, {SIDE}, {SIDE}], got {images.dtype} {list(images.shape)}")
    if folds.shape != (len(images), FOLDS):
        raise TFDFileError(f"{path}: folds must be [N, {FOLDS}] for N = {len(images)} images, got {list(folds.shape)}")
    return torch.from_numpy(images.reshape(len(images), SIDE * SIDE).copy()), torch.from_numpy(folds.astype("int64"))


def prepare_tfd(mat_path: str | Path, out_dir: str | Path) -> None:
    """Write out_dir/tfd.pt (images and folds) from the user's file; nothing is left if it fails."""
    images, folds = read_mat(mat_path)
    with staged_dir(out_dir) as (_, staged):
        torch.save({"images": images, "folds": folds}, staged / "tfd.pt")


def load_tfd(role: str, fold: int, root: str | Path = "data") -> torch.Tensor:
    """The images of one role in one fold as float32 [n, 2304] in [0, 1] (pylearn2's scale: True)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    if not 0 <= fold < FOLDS:
        raise ValueError(f"fold must be 0 to {FOLDS - 1}, got {fold}")
    path = Path(root) / "tfd" / "tfd.pt"
    if not path.is_file():
        raise MissingDataError(f"{path} not found: prepare TFD first ({HOW_TO_GET})")
    stored = torch.load(path, weights_only=True)
    chosen = stored["folds"][:, fold] == ROLES[role]
    return stored["images"][chosen].float().div_(255.0)
