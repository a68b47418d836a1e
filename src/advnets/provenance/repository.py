"""The repository as git and DVC see it, without MLflow (benchmarks/epoch_time.py runs where MLflow
may be missing): its commit and whether the tree differs from it, its pipelines, the files each
stage declares, and their md5s."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from advnets.atomic import md5_of, pending


def git_state(root: Path) -> dict[str, str]:
    """The commit, and whether the tree differs from it outside what DVC manages: dvc.lock and
    the stages' outputs are rewritten by every `dvc repro` (their content is in the md5 tags), and
    params.yaml by `dvc exp run -S` (every run logs the params it read). Those of every pipeline
    of the project, from root or from one of its pipelines' folders (a DVC repository of its own)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    top = git("rev-parse", "--show-toplevel").strip()
    project = _project(root, Path(top) if top else None)
    # git status --porcelain names paths from the top of the work tree, wherever it runs
    base = project.relative_to(Path(top).resolve()) if top and project.is_relative_to(Path(top).resolve()) else Path()
    files = [str(Path(pipeline, name)) for pipeline in pipelines(project) for name in ("dvc.lock", "params.yaml")]
    managed = [(base / path).as_posix().removeprefix("./") for path in [*files, *_outputs(project)]]
    changed = [line[3:].strip('"') for line in git("status", "--porcelain", "--untracked-files=all").splitlines()]
    dirty = [
        path for path in changed
        if Path(path).name != ".gitignore"  # DVC adds its cached outputs to .gitignore files
        and not any(path == out or path.startswith(out + "/") for out in managed)
    ]
    return {"git.commit": git("rev-parse", "HEAD").strip() or "unknown", "git.dirty": str(bool(dirty)).lower()}


def project(root: Path) -> Path:
    """The project root is one of (itself, or the repository around a pipeline's folder)."""
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, check=False)
    top = done.stdout.strip() if done.returncode == 0 else ""
    return _project(root, Path(top) if top else None)


def _project(root: Path, top: Path | None) -> Path:
    """The outermost DVC repository around root within its git work tree (`top`), root itself if
    none: the project whose pipelines root is one of (pipelines/tfd is a DVC repository inside it)."""
    root = root.resolve()
    inside = [root, *(root.parents if top is None else [p for p in root.parents if p.is_relative_to(top.resolve())])]
    return next((folder for folder in reversed(inside) if (folder / ".dvc").is_dir()), root)


def stages(root: Path, name: str) -> dict[str, Any]:
    """The stages of a dvc.yaml or dvc.lock, a `foreach` over a list expanded as DVC names them
    (stage@item, ${item} substituted)."""
    path = root / name
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {}) if path.is_file() else {}
    expanded = {}
    for stage, declared in stages.items():
        if isinstance(declared.get("foreach"), list):
            body = json.dumps(declared["do"])
            for item in declared["foreach"]:
                expanded[f"{stage}@{item}"] = json.loads(body.replace("${item}", str(item)))
        else:
            expanded[stage] = declared
    return expanded


def _out_paths(entries: list) -> list[str]:
    """Paths of a dvc.yaml outs/metrics/plots list (an entry is a path or {path: options})."""
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def _stage_outputs(declared: dict[str, Any]) -> list[str]:
    """The outputs (outs, metrics, plots) of one stage's dvc.yaml entry."""
    return [path for key in ("outs", "metrics", "plots") for path in _out_paths(declared.get(key, []))]


PIPELINES_DIR = "pipelines"  # the other datasets' pipelines: pipelines/<dataset>/dvc.yaml


def pipelines(root: Path) -> list[str]:
    """The folders (relative to root) of every dvc.yaml: "" for the root's, then the others'
    (each a DVC repository of its own: its paths are relative to its folder)."""
    return ["", *(str(path.parent.relative_to(root)) for path in sorted((root / PIPELINES_DIR).glob("*/dvc.yaml")))]


def folder(root: Path, pipeline: str = "") -> Path:
    """The folder of the pipeline's dvc.yaml and dvc.lock, to which their paths are relative:
    root / pipeline, or root itself when root is that folder already (a stage of pipelines/tfd
    runs in its own DVC repository, the workspace whose files its runs record)."""
    parts = Path(pipeline).parts
    if parts and not (root / pipeline).is_dir() and root.resolve().parts[-len(parts):] == parts:
        return root
    return root / pipeline


def _outputs(root: Path) -> list[str]:
    """The outputs every dvc.yaml declares, of every stage, relative to root."""
    return [
        Path(os.path.normpath(Path(pipeline, declared.get("wdir", "."), path))).as_posix()
        for pipeline in pipelines(root)
        for declared in stages(root, str(Path(pipeline, "dvc.yaml"))).values()
        for path in _stage_outputs(declared)
    ]


def stage_files(root: Path, stage: str, pipeline: str = "") -> dict[str, list[str]]:
    """A stage's dependency and output paths as the dvc.yaml in folder `pipeline` declares them,
    relative to that folder; a dependency outside it (another pipeline's ../../stages/train.py:
    the repository's code) is left out, as no `dvc.md5.<path>` tag can name it."""
    declared = stages(folder(root, pipeline), "dvc.yaml").get(stage, {})
    inside = [path for path in declared.get("deps", []) if not path.startswith("../")]
    return {"deps": inside, "outs": _stage_outputs(declared)}


def locked_md5s(root: Path, pipeline: str = "") -> dict[str, str]:
    """Every path the pipeline's dvc.lock records (deps and outs, relative to its folder), with
    its md5 (a DVC 3 file hash is the md5 of the bytes; a folder's ends in .dir)."""
    locked = stages(folder(root, pipeline), "dvc.lock").values()
    # Outputs last: the stage that wrote a path is its authority, not a dependent that ran earlier.
    entries = [e for s in locked for e in s.get("deps", [])] + [e for s in locked for e in s.get("outs", [])]
    return {entry["path"]: entry["md5"] for entry in entries}


def content_md5(root: Path, path: str, locked: dict[str, str] | None = None) -> str | None:
    """A file's md5 (what DVC records for it); a folder's as dvc.lock records it (`locked`: that
    mapping, read once by a caller with many paths); None if unknown."""
    target = pending(root / path)  # a stage's own output, written but not yet in place
    if target.is_file():
        return md5_of(target)
    if not target.is_dir():
        return None
    return (locked if locked is not None else locked_md5s(root)).get(path)
