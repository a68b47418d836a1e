"""Shared fixtures: the offline MNIST mirror, prepared splits, and the repository's params."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock

from advnets.atomic import staged_dir
from advnets.data.mnist import CONTENT_MD5, MIRROR_ENV, download, from_mirror, prepare_mnist
from advnets.params import read_yaml, validate

REPO = Path(__file__).resolve().parents[1]
# The tiers, one folder each (README, "Tests"): `python -m pytest` runs the unit tier alone.
TIERS = {
    "unit": "no network, MLflow store, subprocess or real MNIST: synthetic tensors, a few steps",
    "integration": "an MLflow store, real MNIST, git or a subprocess",
    "pipeline": "dvc repro and dvc exp in a fresh repository",
    "gpu": "needs a CUDA device (skipped without one)",
}


def pytest_configure(config):
    for tier, what in TIERS.items():
        config.addinivalue_line("markers", f"{tier}: {what}")
    # `python -m pytest` with no paths and no -m: the unit tier (named paths run as they are)
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.option.markexpr:
        config.option.markexpr = "unit"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(config, items):
    """Each test is of its folder's tier; a test outside the tier folders is refused."""
    for item in items:
        tier = item.path.parent.name
        if tier not in TIERS or item.path.parent.parent != REPO / "tests":
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
GIT_USER = ("-c", "user.name=advnets tests", "-c", "user.email=tests@advnets.invalid")  # for commits in tests


def masked_logits(discriminator, x, masks):
    """D's own modules with the given dropout masks in place of its Dropout layers (autograd)."""
    masks = iter(masks)
    for module in discriminator:
        x = x * next(masks) if isinstance(module, torch.nn.Dropout) else module(x)
    return x.squeeze(-1)


@pytest.fixture(scope="session")
def mnist_mirror() -> Path:
    """Real MNIST as gzip IDX: $ADVNETS_MNIST_MIRROR, else ../shared/data/mnist beside the repo,
    else the public mirrors' files, downloaded once (md5-checked) into $XDG_CACHE_HOME (default
    ~/.cache)/advnets/mnist."""
    beside = REPO.parent / "shared" / "data" / "mnist"
    local = Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else beside if beside.is_dir() else None
    if local is not None:
        from_mirror(local)  # refused, naming the files, if it lacks any
        return local
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "advnets" / "mnist"
    def complete() -> bool:
        return all((cache / f"{name}.gz").is_file() for name in CONTENT_MD5)

    if complete():  # read as it is, even where it cannot be written
        return cache
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{cache}.lock"):  # the test workers download it once between them
            if not complete():
                with staged_dir(cache) as (_, fetched):  # the cache appears whole, or not at all
                    download(fetched)
    except OSError as exc:
        pytest.fail(f"cannot download MNIST into {cache} ({exc}); set ${MIRROR_ENV} to a folder of its four .gz files")
    return cache


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory, mnist_mirror) -> Path:
    """A data root holding the paper's prepared splits (data/mnist/*.pt)."""
    root = tmp_path_factory.mktemp("data")
    prepare_mnist(root / "mnist", mnist_mirror, train_size=50_000, valid_size=10_000)
    return root


@pytest.fixture
def raw_params() -> dict:
    """The repository's params.yaml as a fresh, mutable mapping."""
    return read_yaml(REPO / "params.yaml")


# What a run of another dataset's pipeline leaves in its folder (a DVC repository of its own), and
# in its .dvc/: not part of the pipeline.
PIPELINE_RUN_FILES = {"data", "models", "metrics", "figures", "dvc.lock", "tmp", "cache", "config.local"}


def _not_copied(folder: str, names: list[str]) -> set[str]:
    here = Path(folder)
    left = {"__pycache__", "runs"}
    if here.parent == REPO / "pipelines" or (here.name == ".dvc" and here.parent.parent == REPO / "pipelines"):
        left |= PIPELINE_RUN_FILES
    return left & set(names)


def copy_folders(root: Path, *folders: str) -> None:
    """The repository's folders, without caches or benchmarks/runs (records, not code), into root;
    links as links (pipelines/<dataset>/params.yaml is ../../params.yaml), and of a pipeline in
    pipelines/ its dvc.yaml and DVC repository (.dvc/config, .dvcignore), not what a run left."""
    for folder in folders:
        shutil.copytree(REPO / folder, root / folder, symlinks=True, ignore=_not_copied)


class PipelineCopy:
    """The pipeline (dvc.yaml, params, stages, library, benchmarks) in a fresh git + DVC repository."""

    def __init__(self, root: Path, mirror: Path):
        self.root = root
        (root / "metrics").mkdir()
        for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "metrics/seeds.json", "metrics/variants.json"):
            shutil.copy2(REPO / name, root / name)
        copy_folders(root, "stages", "src", "pipelines", "benchmarks")
        # mlflow.set_tracking_uri, called by earlier tests, exports MLFLOW_TRACKING_URI: drop it.
        inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        self.env = {
            **inherited,
            MIRROR_ENV: str(mirror),
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        self.run("git", "init", "-q")
        self.run("dvc", "init", "-q")
        self.run("dvc", "config", "core.check_update", "false")

    def run_unchecked(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        result = self.run_unchecked(*args)
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def repro(self, *targets: str) -> str:
        return self.run("dvc", "repro", *targets).stdout

    def set_params(self, **sections: dict) -> None:
        """Update params.yaml section by section, e.g. set_params(train={"epochs": 2})."""
        raw = read_yaml(self.root / "params.yaml")
        for section, values in sections.items():
            raw[section].update(values)
        (self.root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def lock(self) -> dict:
        return yaml.safe_load((self.root / "dvc.lock").read_text())


@pytest.fixture
def pipeline(tmp_path, mnist_mirror) -> PipelineCopy:
    root = tmp_path / "repo"
    root.mkdir()
    return PipelineCopy(root, mnist_mirror)


TINY = {
    "model": {"g_hidden": [32, 32], "d_units": [16, 16], "d_pieces": 3},
    "train": {"epochs": 2, "batches_per_epoch": 4, "batch_size": 25, "monitor_samples": 10, "grid_every": 1},
    "select": {"every": 1, "samples": 200, "valid_points": 300},
}
TINY_PIPELINE = {
    **TINY,
    "sample": {"n": 500},
    "parzen": {"valid_points": 100, "test_points": 200, "baseline_samples": 500},
    "toy": {"g_steps": 20, "panel_steps": [0, 5, 10, 20], "log_every": 5, "d_star_steps": 20, "batch_size": 64},
}


def override(raw: dict, changes: dict) -> dict:
    for section, values in changes.items():
        raw[section].update(values)
    return raw


@pytest.fixture
def tiny_params(raw_params):
    """Validated params with small nets and a few short epochs."""
    return validate(override(raw_params, TINY))


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory) -> Path:
    """An mlflow.db with the schema created (creating one takes seconds); copy it, don't use it."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch, mnist_root, empty_mlflow_store) -> Path:
    """A working directory laid out like the repository: data/, a fresh MLflow store, no env URI."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(mnist_root / "mnist", target_is_directory=True)
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


def imported_modules(script: Path, args: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The files of the project's modules a script loads (advnets and _this_checkout), run as
    Python runs a script (its folder first on sys.path) but without calling its main(); then, what
    any of those modules imports inside a function, until nothing new comes, as a run may. The
    script's own imports inside functions count only with args: they are its arguments' branches."""
    listing = subprocess.run(
        [sys.executable, "-c", IMPORTED_MODULES, str(script), *args],
        capture_output=True, text=True, check=True, cwd=script.parent,  # -c puts the cwd first
    ).stdout
    return [Path(line).resolve() for line in listing.splitlines()]


IMPORTED_MODULES = """
import ast, importlib, runpy, sys
script, args = sys.argv[1], sys.argv[2:]
runpy.run_path(script, run_name="not_main")

def ours(module):
    return (module.__name__.startswith("advnets.") or module.__name__ == "_this_checkout") and getattr(module, "__file__", None)

def imports(path):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("advnets") and node.level == 0:
            yield node.module
            yield from (node.module + "." + alias.name for alias in node.names)

seen, todo = set(), list(imports(script)) if args else []
while True:
    for key, module in list(sys.modules.items()):
        if key not in seen and ours(module):
            seen.add(key)
            todo += imports(module.__file__)
    if not todo:
        break
    name = todo.pop()
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except ImportError:  # a name in a module, not a module
            pass
for name, module in sorted(sys.modules.items()):
    if ours(module):
        print(module.__file__)
"""


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A checkout as git gives it: params.yaml and the committed summaries, no MLflow store."""
    (tmp_path / "metrics").mkdir()
    for name in ("params.yaml", "metrics/seeds.json", "metrics/variants.json"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def dvc_stages() -> list[tuple[str, str, dict]]:
    """(dvc.yaml, stage, its entry) for every stage of every pipeline (a foreach stage's body), the
    script in its cmd and its deps relative to the repository root: another dataset's pipeline is a
    DVC repository of its own in pipelines/<dataset>/, naming the root's stages/ and src/ ../../."""
    import yaml

    def from_root(path: str, folder: Path) -> str:
        return (folder / path).resolve().relative_to(REPO).as_posix() if path.startswith("../") else path

    found = []
    for dvc_yaml in [REPO / "dvc.yaml", *sorted((REPO / "pipelines").glob("*/dvc.yaml"))]:
        for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items():
            body = dict(stage.get("do", stage))
            body["cmd"] = " ".join(from_root(word, dvc_yaml.parent) for word in body["cmd"].split(" "))
            body["deps"] = [from_root(dep, dvc_yaml.parent) for dep in body.get("deps", [])]
            found.append((str(dvc_yaml.relative_to(REPO)), name, body))
    return found
