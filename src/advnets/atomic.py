"""Atomic outputs: write beside the target, then rename, so a failure never leaves half a file.
A single file (atomic_path) is also synced to disk, content then name; a staged folder is not."""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import hashlib
import io
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path


class DiskFullError(OSError):
    """An output could not be written for want of space: names the folder and what is free."""


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in target's folder; on success it replaces target, else vanishes.
    The temporary file's name carries this process's id (.NAME.PID.XXXX.tmp): one that a killed
    process left behind is removed by the next write of the same target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_litter(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_WRITER}_{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    except Exception as exc:
        if _disk_full(exc, target.parent):
            free = shutil.disk_usage(target.parent).free
            raise DiskFullError(errno.ENOSPC, f"no space left to write {target} ({_size(free)} free on its device); "
                                "free some space and run again: nothing was replaced") from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


_WRITER = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())  # this machine, in temporary files' names


def remove_litter(target: Path) -> list[Path]:
    """Remove the temporary files of target that a process of this machine, since dead, left
    behind (another machine's, in a shared folder, may still be writing)."""
    mine = re.compile(rf"\.{re.escape(target.name)}\.{re.escape(_WRITER)}_(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = mine.fullmatch(tmp.name)
        if match and not process_alive(int(match[1])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """A write failed for want of space: ENOSPC or EDQUOT, or a library's own error (torch.save
    reports "basic_ios::clear: iostream error") while the folder's device has next to nothing free."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not (isinstance(exc, RuntimeError) and "iostream error" in str(exc)):
        return False
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


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
