"""Stage dependencies by layer, checked by running each stage script as DVC does, and a published
generator's training code compared with HEAD's through git (advnets.provenance.layers)."""

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from advnets.provenance import layers
from conftest import REPO, dvc_stages, imported_modules


def test_every_stage_depends_on_the_code_it_runs_and_on_nothing_neutral(tmp_path):
    """Each stage script is run as DVC runs it (its argument too), up to its main(): every module
    of this checkout it loads is under one of its deps or neutral, no dep is neutral, and every
    code dep is one it loads. `dvc queue` runs stages in copies of the repository: a stage must
    load its own copy's code, not an installed advnets."""
    copy = tmp_path.resolve()
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for dvc_yaml, name, stage in dvc_stages():
        cmd = stage["cmd"].split()
        args = [arg.replace("${item}", "fc") for arg in cmd[2:]]
        loaded = imported_modules(copy / cmd[1], args)
        elsewhere = [str(path) for path in loaded if copy not in path.parents]
        assert not elsewhere, f"{dvc_yaml} {name} runs code from outside its checkout: {elsewhere}"
        deps = stage["deps"]
        paths = [path.relative_to(copy).as_posix() for path in loaded]
        undeclared = [p for p in paths if not layers.covered(p, deps) and not layers.is_neutral(p)]
        assert not undeclared, f"{dvc_yaml} {name} loads {undeclared}: neither under a dep nor neutral"
        assert not [d for d in deps if layers.is_neutral(d)], f"{dvc_yaml} {name} depends on neutral code"
        unused = [d for d in deps if layers.is_code(d) and d != cmd[1] and not any(layers.covered(p, [d]) for p in paths)]
        assert not unused, f"{dvc_yaml} {name} depends on code it does not load: {unused}"
        assert cmd[1] in deps, f"{dvc_yaml} {name}"


def git(root: Path, *args: str) -> None:
    import subprocess

    from conftest import GIT_USER

    subprocess.run(["git", *GIT_USER, *args], cwd=root, check=True, capture_output=True)


def test_published_code_is_compared_with_heads_file_by_file_following_moves(tmp_path):
    from advnets.provenance.lineage import code_changes

    root = tmp_path
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "stages").mkdir()
    step = "from pkg.nets import G\n\n\ndef step(x):\n" + "".join(f"    x = x * {i} + 1\n" for i in range(12)) + "    return x\n"
    (root / "src" / "pkg" / "step.py").write_text(step)
    (root / "src" / "pkg" / "log.py").write_text("".join(f"def log{i}():\n    return {i}\n\n\n" for i in range(8)))
    (root / "stages" / "train.py").write_text("print('train')\n")
    (root / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python stages/train.py\n"
                                   "    deps: [stages/train.py, src/pkg, data/mnist]\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    first = subprocess_out(root, "rev-parse", "HEAD")
    assert code_changes(root, first) == []  # HEAD trains with the same code

    # the step moves into a layer with new imports; logging moves to neutral code
    (root / "src" / "pkg" / "gan").mkdir()
    (root / "src" / "pkg" / "gan" / "step.py").write_text(step.replace("from pkg.nets", "from pkg.gan.nets"))
    (root / "src" / "pkg" / "step.py").unlink()
    (root / "src" / "advnets" / "provenance").mkdir(parents=True)
    (root / "src" / "pkg" / "log.py").rename(root / "src" / "advnets" / "provenance" / "log.py")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "layers")
    changes = code_changes(root, first)  # log.py moved to neutral code: not the training's any more
    assert len(changes) == 1 and changes[0].startswith("src/pkg/gan/step.py: was src/pkg/step.py, changed (")
    assert changes[0].endswith("imports only)")

    (root / "src" / "pkg" / "gan" / "step.py").write_text(step.replace("x * 3", "x * 4"))
    git(root, "commit", "-q", "-am", "maths")
    (change,) = code_changes(root, first)
    assert "imports only" not in change and ", changed (" in change


def subprocess_out(root: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def test_the_generator_is_declared_a_dvc_model_artifact_of_the_train_stage():
    """DVC's model registry sees the generator: an `artifacts:` entry of type model, on a file the
    train stage writes, named as MLflow registers the same file."""
    from advnets.provenance.logged_model import REGISTERED_NAME

    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())
    artifact = declared["artifacts"]["mnist-generator"]
    assert artifact["type"] == "model" and artifact["meta"]["mlflow_registered_model"] == REGISTERED_NAME
    outs = [next(iter(out)) if isinstance(out, dict) else out for out in declared["stages"]["train"]["outs"]]
    assert artifact["path"] in outs
    listed = subprocess.run(["dvc", "ls", "--json", str(REPO), "models"], capture_output=True, text=True, check=True)
    assert "generator.pt" in {entry["path"] for entry in json.loads(listed.stdout)}
