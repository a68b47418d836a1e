"""Which code can change which stage's results. dvc.yaml gives each stage its script, the layer
folders that determine its outputs (src/advnets/gan, eval, data, report) or single modules
(src/advnets/parzen.py, the stage's body under src/advnets/pipeline/), and its data. Code that
cannot change a result is neutral: no stage depends on it, so editing it makes nothing stale. This
is the one place that says which code that is; tests/integration/test_stage_deps.py holds every
stage to it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from advnets.atomic import md5_of

NEUTRAL = (
    "stages/_this_checkout.py",  # puts this checkout's src/ first on sys.path
    "src/advnets/__init__.py",
    "src/advnets/params.py",  # reading and validating params.yaml: the values are each stage's params
    "src/advnets/errors.py",
    "src/advnets/atomic.py",  # atomic writes and md5s: the bytes written are the caller's
    "src/advnets/device.py",  # which device: train.device and parzen.device are params, the name a tag
    "src/advnets/pipeline/__init__.py",
    "src/advnets/pipeline/stage.py",  # a stage's clean exit on a user-facing error
    "src/advnets/plots_template.py",  # the page `dvc plots show` renders into: no stage runs it
    "src/advnets/provenance/",  # tracking, lineage, publishing, records: bookkeeping only
)
CODE = ("src/", "stages/")  # a dependency under these is code; any other is data


def is_neutral(path: str) -> bool:
    """Whether a file, or a folder (with or without its trailing /), is neutral code."""
    path = path.rstrip("/")
    return any(path == entry.rstrip("/") or (entry.endswith("/") and path.startswith(entry)) for entry in NEUTRAL)


def is_code(path: str) -> bool:
    return path.startswith(CODE)


def covered(path: str, deps: list[str]) -> bool:
    """Whether a file is one of the deps or inside a folder that is one."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def loaded_code(root: Path) -> dict[str, str]:
    """The md5 of every module of this checkout that this process has loaded, by path from root:
    what a run's lineage records as the code that made it (a folder dependency, file by file)."""
    root = root.resolve()
    found = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if root in path.parents and path.suffix == ".py" and path.is_file():
            found[path.relative_to(root).as_posix()] = md5_of(path)
    return dict(sorted(found.items()))


def code_files(root: Path, deps: list[str], commit: str = "HEAD") -> dict[str, str]:
    """The code among deps at a commit, a folder expanded to its files: {path: git blob id}."""
    code = [dep.rstrip("/") for dep in deps if is_code(dep)]
    if not code:
        return {}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-z", commit, "--", *code], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    files = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        files[path] = meta.split()[2]
    return files
