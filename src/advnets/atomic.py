"""Atomic outputs: write beside the target, then rename, so a failure never leaves half a file.
A single file (atomic_path) is also synced to disk, content then name; a staged folder is not.

Inside `outputs_together()` (every DVC stage runs in one: advnets.pipeline.stage) the renames wait
until the block succeeds: each output is written to a staging folder beside its target
(.stage.<host>_<pid>/NAME) and all replace their targets together at the end. A stage that fails
or is killed leaves its previous outputs as they were, which DVC keeps in place (`persist: true`).
"""

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
def atomic_path(target: str | Path, now: bool = False) -> Iterator[Path]:
    """Yield a temporary path in target's folder; on success it replaces target, else vanishes.
    The temporary file's name carries this machine and process (.NAME.<host>_<pid>.XXXX.tmp): one
    that a killed process left behind is removed by the next write of the same target. Inside
    outputs_together() the file goes to the staging folder instead, unless `now` (a checkpoint:
    it must be on disk when written, whatever happens to the stage)."""
    target = Path(target)
    if _transaction is not None and not now:
        with _transaction.staging(target) as staged, atomic_path(staged, now=True) as tmp:
            yield tmp
        return
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
        full = disk_full(exc, target)
        if full is not None:
            raise full from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


_WRITER = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())  # this machine, in temporary files' names


def remove_litter(target: Path) -> list[Path]:
    """Remove the temporary files and scratch folders of target that a process of this machine,
    since dead, left behind (another machine's, in a shared folder, may still be writing)."""
    mine = re.compile(rf"\.{re.escape(target.name)}\.{re.escape(_WRITER)}_(\d+)\.[A-Za-z0-9_]+\.tmp")
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        match = mine.fullmatch(tmp.name)
        if match and not process_alive(int(match[1])):
            _remove(tmp)
            removed.append(tmp)
    return removed


_LITTER = re.compile(rf"\.(?:.+\.{re.escape(_WRITER)}_(\d+)\.[A-Za-z0-9_]+\.tmp|stage\.{re.escape(_WRITER)}_(\d+))")


def sweep(folder: str | Path) -> list[Path]:
    """Remove, anywhere under folder, what a process of this machine that has since died left
    half-done: temporary files, scratch folders, staging folders. A stage sweeps its output
    folders as it starts, so a killed one's litter goes even when DVC finds nothing to rerun."""
    removed = []
    for parent, names, files in os.walk(folder):
        for name in [*names, *files]:
            match = _LITTER.fullmatch(name)
            if match and not process_alive(int(match[1] or match[2])):
                _remove(Path(parent) / name)
                removed.append(Path(parent) / name)
        names[:] = [name for name in names if not _LITTER.fullmatch(name)]
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- outputs_together: a stage's outputs replace the previous ones together, or not at all ----------

_STAGE_DIR = re.compile(rf"\.stage\.{re.escape(_WRITER)}_(\d+)")


class _Transaction:
    def __init__(self) -> None:
        self.staged: dict[Path, Path] = {}  # target (absolute) -> its staged copy, in writing order
        self.removals: list[Path] = []  # removed once the outputs are in place
        self.folders: list[Path] = []  # the staging folders made

    @contextlib.contextmanager
    def staging(self, target: Path) -> Iterator[Path]:
        """The staged path of target: yielded to be written; recorded once written."""
        target = Path(os.path.abspath(target))
        folder = target.parent / f".stage.{_WRITER}_{os.getpid()}"
        if folder not in self.folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_stages(target.parent)
            folder.mkdir(exist_ok=True)
            self.folders.append(folder)
        staged = folder / target.name
        if staged.is_dir():
            shutil.rmtree(staged)
        yield staged
        self.staged.pop(target, None)
        self.staged[target] = staged

    def commit(self) -> None:
        for target, staged in self.staged.items():
            if staged.is_dir():
                replace_dir(staged, target)
            else:
                os.replace(staged, target)
        for folder in {target.parent for target in self.staged}:
            _fsync_folder(folder)
        for path in self.removals:
            path.unlink(missing_ok=True)
        self.discard()

    def discard(self) -> None:
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def _remove_dead_stages(parent: Path) -> None:
    """Staging folders a process of this machine left when it was killed: never committed, so
    nothing in them is an output."""
    for folder in parent.glob(".stage.*"):
        match = _STAGE_DIR.fullmatch(folder.name)
        if match and not process_alive(int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)


_transaction: _Transaction | None = None


@contextlib.contextmanager
def outputs_together() -> Iterator[None]:
    """Hold back every output written in the block (atomic_path, staged_dir) until the block
    succeeds, then put them all in place; if it fails, or the process is killed, the previous
    outputs stay and the staged ones go (a killed process's, by the next run). A block inside
    another is part of it."""
    global _transaction
    if _transaction is not None:
        yield
        return
    _transaction = _Transaction()
    try:
        yield
    except BaseException:
        _transaction.discard()
        raise
    else:
        _transaction.commit()
    finally:
        _transaction = None


def pending(path: str | Path) -> Path:
    """Where path's content is now: its staged copy if this process has written one that is not
    in place yet (a stage reading back an output it wrote: to log it, or to hash it), else path."""
    if _transaction is not None:
        staged = _transaction.staged.get(Path(os.path.abspath(path)))
        if staged is not None:
            return staged
    return Path(path)


def remove_when_done(path: str | Path) -> None:
    """Remove path once the outputs are in place (a checkpoint: until then, it is what an
    interrupted run resumes from); at once outside outputs_together()."""
    if _transaction is not None:
        _transaction.removals.append(Path(os.path.abspath(path)))
    else:
        Path(path).unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal runs too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def disk_full(exc: BaseException, target: Path) -> DiskFullError | None:
    """The error to raise if writing target failed for want of space (naming it and what is free
    on its device), else None."""
    if not _disk_full(exc, target.parent):
        return None
    free = shutil.disk_usage(target.parent).free
    return DiskFullError(errno.ENOSPC, f"no space left to write {target} ({_size(free)} free on its device); "
                         "free some space and run again: nothing was replaced")


def _disk_full(exc: BaseException, folder: Path) -> bool:
    """A write failed for want of space: ENOSPC or EDQUOT, or a library's own error (torch.save
    reports "basic_ios::clear: iostream error" or "file write failed") while the folder's device has
    next to nothing free."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    chain = []  # torch.save's own error, or the one its writer raises on closing while handling it
    while exc is not None and len(chain) < 5:
        chain.append(exc)
        exc = exc.__context__
    marks = ("iostream error", "write failed")
    if not any(isinstance(e, RuntimeError) and any(mark in str(e) for mark in marks) for e in chain):
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
    the block succeeds, `out` replaces target (inside outputs_together(), when that block does);
    whatever happens, the scratch folder goes. Its name carries this machine and process
    (.NAME.<host>_<pid>.XXXX.tmp), so that one a killed process left is removed by the next."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_litter(target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_WRITER}_{os.getpid()}.", suffix=".tmp", dir=target.parent))
    try:
        out = scratch / "out"
        out.mkdir()
        yield scratch, out
        if _transaction is not None:
            with _transaction.staging(target) as staged:
                os.replace(out, staged)
        else:
            replace_dir(out, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
