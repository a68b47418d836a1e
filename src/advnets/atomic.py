"""Atomic outputs: write beside the target, then rename, so a failure never leaves half a file.
A single file (atomic_path) is also synced to disk, content then name; a staged folder is not."""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in target's folder; on success it replaces target, else vanishes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename survive a power cut: the name lives in the folder's own data (POSIX). Some
    filesystems (CIFS, some FUSE) or permissions do not allow syncing a folder; the file is in
    place all the same, so that is no failure."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EACCES, errno.EPERM):
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_torch(target: str | Path, obj) -> None:
    """torch.save through a file object: given a path, torch.save stores the (random) temporary
    file's name in the archive, which would give identical weights a different md5 every time."""
    import torch

    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def write_csv(target: str | Path, rows: list[dict]) -> None:
    """A table of dict rows (the first row's keys are the header), e.g. a DVC plot."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(target, table.getvalue())


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[tuple[Path, Path]]:
    """(scratch, out): a scratch folder beside target and an empty `out` folder inside it. When
    the block succeeds, `out` replaces target; whatever happens, the scratch folder goes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as scratch:
        out = Path(scratch) / "out"
        out.mkdir()
        yield Path(scratch), out
        replace_dir(out, target)


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing any previous one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old)


def md5_of(path: str | Path) -> str:
    """A file's md5: what DVC 3 records for it."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
