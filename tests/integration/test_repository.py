import shutil
import subprocess

from advnets.provenance import repository
from conftest import GIT_USER, REPO


def git(root, *args):
    subprocess.run(["git", *GIT_USER, *args], cwd=root, check=True, capture_output=True)


def test_git_dirty_ignores_what_dvc_writes_but_not_code(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "start")
    assert repository.git_state(tmp_path)["git.dirty"] == "false"

    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "parzen.json").write_text("{}\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ".gitignore").write_text("/generator.pt\n")
    (tmp_path / "params.yaml").write_text("train:\n  seed: 1\n")  # as `dvc exp run -S` does
    assert repository.git_state(tmp_path)["git.dirty"] == "false"

    (tmp_path / "src" / "new.py").write_text("y = 1\n")  # untracked code
    assert repository.git_state(tmp_path)["git.dirty"] == "true"
    (tmp_path / "src" / "new.py").unlink()
    (tmp_path / "src" / "code.py").write_text("x = 2\n")
    state = repository.git_state(tmp_path)
    assert state["git.dirty"] == "true" and len(state["git.commit"]) == 40
