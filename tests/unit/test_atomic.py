import errno
import os
import shutil
import stat

import pytest

from advnets.atomic import (
    _WRITER, DiskFullError, atomic_path, outputs_together, pending, remove_when_done, replace_dir, staged_dir,
    sweep, write_text,
)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_replace_dir_swaps_in_the_new_folder(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "stale").write_text("x")
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "fresh").write_text("y")
    replace_dir(staged, target)
    assert sorted(p.name for p in target.iterdir()) == ["fresh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads an fd's path from Linux's /proc")
def test_the_file_then_its_new_name_are_synced_to_disk(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    synced = []  # (what the descriptor names, whether the target exists yet)
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append((os.readlink(f"/proc/self/fd/{fd}"), target.exists())) or fsync(fd))
    write_text(target, "new")
    assert len(synced) == 2
    assert synced[0][0].endswith(".tmp") and not synced[0][1]  # the content, before the rename
    assert synced[1] == (str(tmp_path), True)  # the folder, after it: the rename itself survives a power cut


@pytest.mark.parametrize("refused", ["open", "fsync"])
def test_a_folder_that_cannot_be_synced_does_not_fail_the_write(tmp_path, monkeypatch, refused):
    real_open, real_fsync = os.open, os.fsync

    def open_files_only(path, *args, **kwargs):  # a folder one may write to but not read
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def fsync_files_only(fd):  # as on CIFS: a folder's fsync is refused
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, refused, open_files_only if refused == "open" else fsync_files_only)
    write_text(tmp_path / "out.txt", "new")
    assert (tmp_path / "out.txt").read_text() == "new"


def test_a_temporary_file_left_by_a_dead_process_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "checkpoint.pt"
    host = _WRITER
    dead = tmp_path / f".checkpoint.pt.{host}_999999999.abcd1234.tmp"  # no process has this id
    mine = tmp_path / f".checkpoint.pt.{host}_{os.getpid()}.efgh5678.tmp"  # a write of this process, under way
    elsewhere = tmp_path / ".checkpoint.pt.another-machine_999999999.abcd1234.tmp"  # may still be writing
    unknown = tmp_path / ".checkpoint.pt.abcd.tmp"  # no writer in its name: not ours to judge
    longer = tmp_path / f".checkpoint.pt.5.{host}_999999999.abcd1234.tmp"  # target checkpoint.pt.5's
    other = tmp_path / f".other.pt.{host}_999999999.abcd1234.tmp"
    for path in (dead, mine, elsewhere, unknown, longer, other):
        path.write_text("partial")
    write_text(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (target, mine, elsewhere, unknown, longer, other))


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     RuntimeError("basic_ios::clear: iostream error")])  # torch.save's
def test_a_full_disk_is_said_so_naming_the_file_and_the_free_space(tmp_path, monkeypatch, failure):
    target = tmp_path / "out.pt"
    write_text(target, "old")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 30, 10 << 30, 4096))
    full = rf"no space left to write {target} \(4\.0 KiB free on its device\)"
    with pytest.raises(DiskFullError, match=full), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise failure
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def test_outputs_written_together_replace_the_old_ones_only_when_all_are_written(tmp_path):
    a, b, checkpoint = tmp_path / "a.txt", tmp_path / "sub" / "b.txt", tmp_path / "checkpoint.pt"
    write_text(a, "old a")
    write_text(checkpoint, "epoch 3")
    with outputs_together():
        write_text(a, "new a")
        write_text(b, "new b")
        with atomic_path(checkpoint, now=True) as tmp:  # a checkpoint is on disk at once
            tmp.write_text("epoch 4")
        assert checkpoint.read_text() == "epoch 4"
        assert a.read_text() == "old a" and not b.exists()
        assert pending(a).read_text() == "new a" and pending(a).name == "a.txt"  # its own name: MLflow logs it so
        remove_when_done(checkpoint)
        assert checkpoint.exists()
    assert a.read_text() == "new a" and b.read_text() == "new b" and not checkpoint.exists()
    assert pending(a) == a
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a.txt", "sub", "sub/b.txt"]


def test_outputs_of_a_failed_block_are_dropped_and_the_old_ones_kept(tmp_path):
    a, checkpoint = tmp_path / "a.txt", tmp_path / "checkpoint.pt"
    write_text(a, "old a")
    write_text(checkpoint, "epoch 3")
    with pytest.raises(KeyboardInterrupt), outputs_together():
        write_text(a, "new a")
        with staged_dir(tmp_path / "data") as (_, out):
            (out / "train.pt").write_text("x")
        remove_when_done(checkpoint)
        raise KeyboardInterrupt
    assert a.read_text() == "old a" and checkpoint.read_text() == "epoch 3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "checkpoint.pt"]


def test_a_folder_written_together_with_files_replaces_the_old_one_at_the_end(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "old.pt").write_text("old")
    with outputs_together():
        with staged_dir(data) as (_, out):
            (out / "new.pt").write_text("new")
        assert [p.name for p in data.iterdir()] == ["old.pt"]
    assert [p.name for p in data.iterdir()] == ["new.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_what_a_killed_process_left_staged_or_half_unpacked_is_removed_by_the_next(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    assert not os.path.exists(f"/proc/{dead}")
    staging = tmp_path / f".stage.{_WRITER}_{dead}"
    staging.mkdir()
    (staging / "a.txt").write_text("never put in place")
    scratch = tmp_path / f".data.{_WRITER}_{dead}.abcd1234.tmp"
    (scratch / "out").mkdir(parents=True)
    alive = tmp_path / f".stage.{_WRITER}_{os.getpid()}x"  # not this pattern: left alone
    alive.mkdir()
    with outputs_together():
        write_text(tmp_path / "a.txt", "new")
        with staged_dir(tmp_path / "data") as (_, out):
            (out / "x").write_text("x")
    assert not staging.exists() and not scratch.exists() and alive.exists()


def test_a_sweep_removes_only_what_dead_processes_of_this_machine_left(tmp_path):
    dead = 2**22 + 12346
    litter = [tmp_path / f".stage.{_WRITER}_{dead}", tmp_path / "m" / f".generator.pt.{_WRITER}_{dead}.k2j4.tmp",
              tmp_path / f".mnist.{_WRITER}_{dead}.x7_q.tmp"]
    kept = [tmp_path / f".stage.{_WRITER}_{os.getpid()}", tmp_path / "m" / f".generator.pt.other-host_{dead}.k2j4.tmp",
            tmp_path / "m" / "generator.pt"]
    for path in litter + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.mkdir() if path.name.startswith(".stage") or path.name.startswith(".mnist") else path.write_text("x"))
    assert sorted(sweep(tmp_path)) == sorted(litter)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in litter)
