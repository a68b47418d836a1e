import pytest

from advnets.atomic import atomic_path, replace_dir, write_text


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
