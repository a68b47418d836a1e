"""Lineage: which commit, params, data and MLflow runs made each file of the pipeline, and whether
the files on disk, dvc.lock and the MLflow tags still agree.

DVC decides what is stale (`dvc status`: a changed dependency, param or output); MLflow runs are
joined to files by content, through the `dvc.md5.<path>` tags every stage writes (a DVC 3 file
hash is the md5 of the bytes), so a stage DVC restored from its cache still finds its run.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import yaml

from advnets.errors import AdvnetsError
from advnets.provenance import layers, publish, repository, tracking


@dataclass
class FileRecord:
    path: str
    md5: str | None  # on disk (a folder: as dvc.lock records it)
    locked_md5: str | None
    runs: list[dict[str, str]] = field(default_factory=list)  # the runs that recorded this content
    locked_at: str | None = None  # the first commit whose dvc.lock records this content
    published_in: list[str] = field(default_factory=list)  # lineage.json files that record the same content


# Why a check failed, in the order the verdict lists them.
CODE_CHANGED = "code changed since the lock"
PARAMS_CHANGED = "params changed since the lock"
OUTPUT_DIFFERS = "output differs from the lock"
INPUT_DIFFERS = "input differs from the lock"
STAGE_CHANGED = "stage changed since the lock"
NOT_RUN = "stage has not run"
TAGS_DISAGREE = "run tags disagree with files"
PUBLISHED_DIFFERS = "published file differs from its lineage.json"
UNKNOWN_COMMIT = "unknown commit"
NO_RUNS = "no MLflow run to check against"
CAUSES = (CODE_CHANGED, PARAMS_CHANGED, OUTPUT_DIFFERS, INPUT_DIFFERS, STAGE_CHANGED, NOT_RUN, TAGS_DISAGREE,
          PUBLISHED_DIFFERS, UNKNOWN_COMMIT, NO_RUNS)


@dataclass
class Mismatch:
    """One failed check: the file, stage or run it is about, what the record expects and what was found."""

    cause: str  # one of CAUSES
    path: str
    expected: str | None
    found: str | None
    message: str  # the whole story in one line


@dataclass
class StageRecord:
    stage: str
    params: dict[str, Any]
    outputs: list[FileRecord]


@dataclass
class Lineage:
    workspace: str
    git: dict[str, str]
    tracking_uri: str
    stages: list[StageRecord]
    runs: list[dict[str, Any]]  # with --run: the runs followed
    published: list[dict[str, Any]]  # results/mnist/seed-N/generator.pt and their recorded lineage
    mismatches: list[Mismatch]
    not_checked: list[str] = field(default_factory=list)  # what could not be checked here, and why

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def verdict(self) -> dict[str, Any]:
        """How many files and runs were checked, how many match, and the mismatches by cause."""
        bad = {m.path for m in self.mismatches}
        files = [out.path for stage in self.stages for out in stage.outputs if out.md5]
        files += [entry["path"] for entry in self.published]
        files += sorted({path for run in self.runs for path in run.get("files", {})} - set(files))
        runs = {run["run_id"] for stage in self.stages for out in stage.outputs for run in out.runs}
        runs |= {run["run_id"] for run in self.runs}
        by_cause = {cause: sorted({m.path for m in self.mismatches if m.cause == cause}) for cause in CAUSES}
        return {
            "ok": self.ok,
            "files_checked": len(files),
            "files_matching": sum(path not in bad for path in files),
            "runs_checked": len(runs),
            "mismatches": len(self.mismatches),
            "by_cause": {cause: paths for cause, paths in by_cause.items() if paths},
            "not_checked": self.not_checked,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "verdict": self.verdict()}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _locked_params(locked: dict[str, Any]) -> dict[str, Any]:
    """The params a stage ran with, as dotted keys (dvc.lock records whole sections as mappings)."""
    return {key: value for file in locked.get("params", {}).values() for key, value in _flatten(file).items()}


# Opening a missing sqlite store would create it, empty.
_NO_STORE_HINT = (
    "a fresh clone has none (mlflow.db is not in git); name the store that holds the runs with "
    "--tracking-uri or MLFLOW_TRACKING_URI, or make them with `dvc repro`"
)


class RunFinder:
    """MLflow runs by the content they recorded, in every experiment of one store (none if the
    store does not exist: it is not created)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.missing = tracking.missing_store(uri)
        self.client = None if self.missing else tracking.client(uri)
        self.error = ""  # why the store could not be read
        try:
            self.experiments = [] if self.missing else [e.experiment_id for e in self.client.search_experiments()]
        except mlflow.exceptions.MlflowException as exc:
            self.experiments, self.error = [], exc.message

    def has_runs(self) -> bool:
        if not self.experiments:
            return False
        try:
            return bool(self.client.search_runs(self.experiments, max_results=1))
        except mlflow.exceptions.MlflowException as exc:
            self.experiments, self.error = [], exc.message
            return False

    def why_no_runs(self, source: str) -> str:
        """Why no output can be traced to a run of this store (it has none, or none to read);
        `source`: where its URI came from."""
        where = f"the MLflow store at {self.uri} (from {source})"
        if self.missing:
            return f"{where} does not exist: {_NO_STORE_HINT}"
        if self.error:
            return f"{where} could not be read ({self.error})"
        return f"{where} holds no runs: name the store that holds them with --tracking-uri or MLFLOW_TRACKING_URI"

    def recorded(self, path: str, md5: str) -> list[dict[str, str]]:
        if not self.experiments:
            return []
        found = self.client.search_runs(self.experiments, f"tags.`{tracking.MD5_TAG}{path}` = '{md5}'", max_results=1000)
        return [_describe(run) for run in found]

    def get(self, run_id: str) -> mlflow.entities.Run:
        return self.client.get_run(run_id)

    def children(self, run_id: str) -> list[mlflow.entities.Run]:
        return self.client.search_runs(self.experiments, f"tags.mlflow.parentRunId = '{run_id}'")


def _describe(run: mlflow.entities.Run) -> dict[str, Any]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        # a training run made outside the pipeline names the script that trained it (advnets.provenance.record)
        "stage": tags.get("DVC_STAGE") or (f"train by {tags[tracking.TRAINED_BY_TAG]}" if tracking.TRAINED_BY_TAG in tags else ""),
        "git.commit": tags.get("git.commit", ""),
        "DVC_EXP_NAME": tags.get("DVC_EXP_NAME", ""),
        "resumes": tracking.resumes(tags),  # [{epoch, changes}]: what changed since the session before
    }


def chosen_store(root: Path, explicit: str | None = None) -> tuple[str, str]:
    """The store to check against, and where that came from (for messages): the one given, else
    the user's MLFLOW_TRACKING_URI, else the one the training run was logged to
    (models/mlflow-run.json), else the project's own."""
    if explicit:
        return explicit, "--tracking-uri"
    user = tracking.user_tracking_uri()
    if user:
        return user, "MLFLOW_TRACKING_URI"
    record = root / tracking.RUN_RECORD
    if record.is_file():
        return json.loads(record.read_text())["tracking_uri"], tracking.RUN_RECORD
    return tracking.tracking_uri(root), "the project's default"


def existing_store_uri(root: Path, explicit: str | None = None) -> str:
    """chosen_store's URI, refused if it names a store that does not exist (reading it would create an
    empty one, and find nothing)."""
    uri, source = chosen_store(root, explicit)
    if tracking.missing_store(uri):
        raise AdvnetsError(f"no MLflow store at {uri} (from {source}): {_NO_STORE_HINT}")
    return uri


def _stale(root: Path, locked: dict[str, Any], pipeline: str = "") -> tuple[list[Mismatch], list[str]]:
    """What `dvc status` finds changed since dvc.lock (its stages: `locked`): one mismatch per file
    or per param key; a file that is simply absent (a fresh clone has no DVC-cached output) is not
    a mismatch but something this workspace cannot check, listed apart. Another dataset's pipeline
    is a DVC repository of its own: its status is that repository's, its paths relative to its
    folder, but for the repository's code outside it (../../stages/train.py), named from root."""
    from dvc.repo import Repo

    if not locked:
        return [], []
    here = root / pipeline
    now = _flatten(yaml.safe_load((here / "params.yaml").read_text()) or {})
    with Repo(str(here)) as repo:
        status = repo.status(targets=[f"{here / 'dvc.yaml'}:{stage}" for stage in locked])
    locked_md5s = repository.locked_md5s(root, pipeline)
    problems, absent = [], set()
    outputs = {out["path"] for entry in locked.values() for out in entry.get("outs", [])}
    for target, changes in status.items():
        stage = target.rpartition(":")[2]
        for change in changes:
            if not isinstance(change, dict):  # e.g. "changed command"
                problems.append(Mismatch(STAGE_CHANGED, stage, None, None, f"stage {stage}: {change}"))
                continue
            for kind, entries in change.items():
                for path, state in entries.items():
                    path = _named(path, root, pipeline)
                    if isinstance(state, dict):  # a params file: {"train": "modified", ...}
                        was = _locked_params(locked.get(stage, {}))
                        problems += _param_changes(stage, path, state, was, now, pipeline)
                    elif state in ("deleted", "not in cache") and path in outputs and not (here / path).exists():
                        absent.add(path)  # a DVC-cached output this workspace lacks (a fresh clone's)
                    elif state == "not in cache" and path in outputs:
                        continue  # on disk; only DVC's cache lacks it (its content is checked against runs)
                    elif kind == "changed outs":
                        message = f"{path}: " + _OUT_STATES.get(state, state + " (stage {stage})").format(stage=stage)
                        found = repository.content_md5(here, path, locked_md5s)
                        problems.append(Mismatch(OUTPUT_DIFFERS, path, locked_md5s.get(path), found, message))
                    else:
                        cause = CODE_CHANGED if layers.is_code(path) else INPUT_DIFFERS
                        found = repository.content_md5(here, path, locked_md5s) if not layers.is_code(path) else None
                        problems.append(Mismatch(cause, path, None, found, f"{path}: {state} since stage {stage} ran"))
    notes = [f"{path}: not in this workspace (DVC-cached, not in git: `{_repro(pipeline)}` makes it, or "
             f"`{_dvc(pipeline)} pull` from a DVC remote if one is set)" for path in sorted(absent)]
    return problems, notes


def _named(path: str, root: Path, pipeline: str) -> str:
    """A path `dvc status` reports for the pipeline in folder `pipeline`, as lineage names it:
    relative to that folder, or, outside it (the repository's code, which DVC names by its
    absolute path), relative to the root."""
    if not pipeline or not Path(path).is_absolute():
        return path
    full = Path(path).resolve()
    for base in (root / pipeline, root):
        if full.is_relative_to(base.resolve()):
            return full.relative_to(base.resolve()).as_posix()
    return path


_OUT_STATES = {
    "modified": "modified since stage {stage} wrote it (dvc.lock records other content)",
}


def _param_changes(stage: str, path: str, reported: dict[str, str], was: dict, now: dict, pipeline: str = "") -> list[Mismatch]:
    """Name each changed key under the names `dvc status` reports (a whole section, or one key)."""
    problems = []
    for name in reported:
        keys = sorted(k for k in {*was, *now} if k == name or k.startswith(name + "."))
        for key in [k for k in keys if was.get(k) != now.get(k)] or [name]:
            message = (f"{path}: {key} is {now.get(key, 'absent')!r} but stage {stage} ran with "
                       f"{was.get(key, 'absent')!r} (dvc.lock); run `{_repro(pipeline)}`")
            problems.append(Mismatch(PARAMS_CHANGED, f"{path}:{key}", repr(was.get(key, "absent")),
                                     repr(now.get(key, "absent")), message))
    return problems


def _locked_at(root: Path, lock: str, md5: str) -> str | None:
    """The first commit whose `lock` file records this md5: when the content entered the record."""
    done = subprocess.run(["git", "log", "--all", "--reverse", "--format=%h", f"-S{md5}", "--", lock], check=False,
                          cwd=root, capture_output=True, text=True)
    return next(iter(done.stdout.split()), None) if done.returncode == 0 else None


def workspace_lineage(root: Path, uri: str | None = None, pipeline: str = "") -> Lineage:
    """The lineage of the files in the workspace, checked against dvc.lock and MLflow: of the root
    pipeline (MNIST), or of the one in folder `pipeline` (pipelines/cifar10, pipelines/tfd), a DVC
    repository of its own: its dvc.lock's paths, and those its runs' `dvc.md5.<path>` tags name
    (tracking.workspace() is that folder when its stages run), are relative to its folder."""
    root = root.resolve()
    here = root / pipeline
    uri, source = chosen_store(root, uri)
    finder = RunFinder(uri)
    lock = str(Path(pipeline, "dvc.lock"))
    declared = repository.stages(root, str(Path(pipeline, "dvc.yaml")))
    locked = {name: entry for name, entry in repository.stages(root, lock).items() if name in declared}
    locked_md5s = repository.locked_md5s(root, pipeline)
    stages, mismatches, not_checked = [], [], []
    store_has_runs = finder.has_runs()
    if not store_has_runs:  # one line says why, not one per output
        not_checked.append(f"MLflow runs: {finder.why_no_runs(source)}")
    published, published_problems = _published(root, finder) if not pipeline else ([], [])
    for stage in declared:
        if stage not in locked:
            mismatches.append(Mismatch(NOT_RUN, stage, None, None, f"stage {stage}: has not run (no dvc.lock entry); run `{_repro(pipeline)}`"))
            continue
        outputs = []
        for out in locked[stage].get("outs", []):
            path, locked_md5 = out["path"], out["md5"]
            md5 = repository.content_md5(here, path, locked_md5s)
            runs = finder.recorded(path, md5) if md5 else []
            same_in = [entry["lineage"] for entry in published if entry["files"].get(path) == locked_md5]
            outputs.append(FileRecord(path, md5, locked_md5, runs, _locked_at(root, lock, locked_md5), same_in))
            if md5 and stage != "download" and store_has_runs and not any(run["stage"] == stage for run in runs):
                mismatches.append(Mismatch(TAGS_DISAGREE, path, md5, None,
                                           f"{path}: no MLflow run of stage {stage} in {uri} recorded this content (md5 {md5})"))
        stages.append(StageRecord(stage, _locked_params(locked[stage]), outputs))
    stale, absent = _stale(root, locked, pipeline)
    return Lineage(str(root), repository.git_state(root), uri, stages, [], published,
                   stale + mismatches + published_problems, not_checked + absent)


def _dvc(pipeline: str) -> str:
    """The DVC command for the pipeline in folder `pipeline`, a DVC repository of its own."""
    return f"dvc --cd {pipeline}" if pipeline else "dvc"


def _repro(pipeline: str) -> str:
    return f"{_dvc(pipeline)} repro"


def _published(root: Path, finder: RunFinder) -> tuple[list[dict[str, Any]], list[Mismatch]]:
    """Each published generator against the lineage.json beside it, git, and MLflow if the run is
    in this store (a fresh clone has no store: lineage.json is the record then)."""
    entries, problems = [], []
    for path in publish.published(root):
        name = str(path.relative_to(root))
        if not (path.parent / "lineage.json").is_file():
            problems.append(Mismatch(PUBLISHED_DIFFERS, name, None, None,
                                     f"{name}: no lineage.json beside it; publish it with `advnets publish`"))
            continue
        record = json.loads((path.parent / "lineage.json").read_text())
        md5 = repository.content_md5(root, name)
        in_store = bool(finder.recorded(publish.GENERATOR, md5))
        exists = _commit_exists(root, record["git_commit"])
        entries.append({"path": name, "md5": md5, "run_id": record["run_id"], "in_store": in_store,
                        "git_commit": record["git_commit"], "parzen": record["parzen"],
                        "lineage": str((path.parent / "lineage.json").relative_to(root)), "files": record.get("files", {}),
                        "code_changes": code_changes(root, record["git_commit"]) if exists else None})
        if md5 != record["generator_md5"]:
            problems.append(Mismatch(PUBLISHED_DIFFERS, name, record["generator_md5"], md5,
                                     f"{name}: md5 {md5}, but its lineage.json records {record['generator_md5']}"))
        if not exists:
            problems.append(Mismatch(UNKNOWN_COMMIT, name, record["git_commit"], None,
                                     f"{name}: made at commit {record['git_commit']}, which this repository does not have"))
    return entries, problems


def _train_deps(root: Path, commit: str, stage: str = "train") -> list[str]:
    declared = yaml.safe_load(_git(root, "show", f"{commit}:dvc.yaml")) or {}
    return list(declared.get("stages", {}).get(stage, {}).get("deps", []))


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def code_changes(root: Path, commit: str, stage: str = "train") -> list[str]:
    """How the code that trains (the train stage's code deps, folders expanded, neutral code left
    out: advnets.provenance.layers) differs between `commit` and HEAD, file by file, as git sees it
    (a moved file is followed): [] when HEAD trains with the same code."""
    then = layers.code_files(root, _train_deps(root, commit, stage), commit)
    now = {path: blob for path, blob in layers.code_files(root, _train_deps(root, "HEAD", stage)).items() if not layers.is_neutral(path)}
    if not then and not now:
        return []
    # All the code, so that git follows a file that moved out of the stage's deps (to neutral code)
    listing = _git(root, "diff", "-M", "--name-status", "-z", commit, "HEAD", "--", *layers.CODE).split("\0")
    changes, entries = [], iter(filter(None, listing))
    for status in entries:
        if status[0] == "R":
            old, new = next(entries), next(entries)
            if new in now:
                same = status[1:] == "100"
                how = "" if same else _how_changed(root, f"{commit}:{old}", f"HEAD:{new}", f"{int(status[1:])}% alike")
                changes.append(f"{new}: was {old}" + how)
            elif old in then and not layers.is_neutral(new):
                changes.append(f"{old}: moved to {new}, which the train stage no longer depends on")
        else:
            path = next(entries)
            if status == "M" and (path in now or (path in then and not layers.is_neutral(path))):
                changes.append(f"{path}:" + _how_changed(root, f"{commit}:{path}", f"HEAD:{path}").removeprefix(","))
            elif status == "A" and path in now:
                changes.append(f"{path}: new")
            elif status == "D" and path in then and not layers.is_neutral(path):
                changes.append(f"{path}: gone")
    return changes


def _how_changed(root: Path, before: str, after: str, alike: str = "") -> str:
    """", changed (...)", saying "imports only" when every changed line is an import: a file moved
    between layers runs the same code under its new module names."""
    def code(blob: str) -> list[str]:
        return [line for line in _git(root, "show", blob).splitlines() if not line.lstrip().startswith(("import ", "from "))]

    notes = [note for note in (alike, "imports only" if code(before) == code(after) else "") if note]
    return f", changed ({', '.join(notes)})" if notes else ", changed"


def _commit_exists(root: Path, commit: str | None) -> bool:
    if not commit:
        return False
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True).returncode == 0


def run_lineage(root: Path, run_id: str, uri: str | None = None) -> Lineage:
    """The lineage an MLflow run recorded (with the model's run: the newest run of each later
    stage), checked against the files in the workspace and dvc.lock."""
    root = root.resolve()
    uri, source = chosen_store(root, uri)
    finder = RunFinder(uri)
    if finder.missing:
        return Lineage(str(root), repository.git_state(root), uri, [], [], [],
                       [Mismatch(NO_RUNS, run_id, None, None, f"run {run_id}: {finder.why_no_runs(source)}")])
    try:
        run = finder.get(run_id)
    except mlflow.exceptions.MlflowException:
        return Lineage(str(root), repository.git_state(root), uri, [], [], [],
                       [Mismatch(NO_RUNS, run_id, None, None, f"run {run_id}: not in {uri}")])
    parent = run.data.tags.get("mlflow.parentRunId")
    model_run = finder.get(parent) if parent else run
    newest: dict[str, mlflow.entities.Run] = {}
    for child in sorted(finder.children(model_run.info.run_id), key=lambda r: r.info.start_time, reverse=True):
        newest.setdefault(child.data.tags.get("DVC_STAGE", ""), child)  # a re-run stage supersedes
    locked = repository.locked_md5s(root)
    runs, mismatches = [], []
    for r in [model_run, *newest.values()]:
        files = publish.recorded_files(r.data.tags)
        runs.append({**_describe(r), "params": r.data.params, "files": files})
        if not files:
            mismatches.append(Mismatch(TAGS_DISAGREE, r.info.run_id, None, None,
                                       f"run {r.info.run_id}: recorded no file md5s (made before lineage tags?)"))
        for path, md5 in sorted(files.items()):
            if layers.is_neutral(path):  # recorded as what ran; editing it changes no result
                continue
            disk = repository.content_md5(root, path, locked)
            where = f"run {r.info.run_id} ({r.data.tags.get('DVC_STAGE', '?')}) recorded {path} as {md5}"
            if disk != md5:
                mismatches.append(Mismatch(TAGS_DISAGREE, path, md5, disk, f"{path}: {where}, the workspace holds {disk or 'nothing'}"))
            elif locked.get(path) not in (None, md5):
                mismatches.append(Mismatch(OUTPUT_DIFFERS, path, md5, locked[path], f"{path}: {where}, dvc.lock records {locked[path]}"))
    return Lineage(str(root), repository.git_state(root), uri, [], runs, [], mismatches)


def format_verdict(lineage: Lineage) -> list[str]:
    """The verdict first: what was checked, how much matches, the mismatches grouped by cause."""
    v = lineage.verdict()
    runs = f" and {v['runs_checked']} MLflow run{'s' * (v['runs_checked'] != 1)}" if v["runs_checked"] else ""
    head = f"{v['files_checked']} files{runs} checked, {v['files_matching']} files match"
    if v["ok"]:
        lines = [f"PASS: {head}; no mismatch"]
    else:
        lines = [f"FAIL: {head}; {v['mismatches']} mismatch{'es' * (v['mismatches'] != 1)}:"]
        for cause, paths in v["by_cause"].items():
            shown = ", ".join(paths[:6]) + (f" and {len(paths) - 6} more" if len(paths) > 6 else "")
            lines.append(f"  {cause} ({len(paths)}): {shown}")
    by_commit: dict[str, list[str]] = {}
    for stage in lineage.stages:
        for out in stage.outputs:
            by_commit.setdefault(out.locked_at or "no commit (dvc.lock not committed)", []).append(out.path)
    if by_commit:
        lines.append("Each output's content entered dvc.lock at:")
        lines += [f"  {commit}: {', '.join(paths)}" for commit, paths in by_commit.items()]
    if v["not_checked"]:
        lines.append("Not checked here:")
        lines += [f"  {note}" for note in v["not_checked"]]
    return lines


def format_text(lineage: Lineage) -> str:
    git = lineage.git
    dirty = "with changes outside DVC's outputs" if git["git.dirty"] == "true" else "clean outside DVC's outputs"
    lines = [*format_verdict(lineage), "",
             f"workspace {lineage.workspace}", f"git {git['git.commit']} ({dirty})", f"MLflow {lineage.tracking_uri}", ""]
    for stage in lineage.stages:
        params = ", ".join(f"{k}={v}" for k, v in stage.params.items())
        lines.append(f"{stage.stage}" + (f"  [{params[:100]}{'...' if len(params) > 100 else ''}]" if params else ""))
        for out in stage.outputs:
            runs = ", ".join(f"{run['run_id'][:8]} {run['stage']} at git {run['git.commit'][:7]}" for run in out.runs) or "no run"
            state = "md5 " + (out.md5 or "missing")
            if out.md5 and out.md5 != out.locked_md5:
                state += f" (dvc.lock: {out.locked_md5})"
            since = f", in dvc.lock since {out.locked_at}" if out.locked_at else ", not in a committed dvc.lock"
            lines.append(f"  {out.path}  {state}{since}  runs: {runs}")
            if out.published_in:
                more = f" and {len(out.published_in) - 1} more" if len(out.published_in) > 1 else ""
                lines.append(f"    the same content is in {out.published_in[0]}{more}")
    for run in lineage.runs:
        exp = f", experiment {run['DVC_EXP_NAME']}" if run["DVC_EXP_NAME"] else ""
        lines.append(f"run {run['run_id']} {run['run_name']} (stage {run['stage']}, git {run['git.commit']}{exp})")
        for resume in run["resumes"]:
            lines.append(f"  resumed after epoch {resume['epoch']}: " + ("nothing changed" if resume["changes"] == "nothing" else resume["changes"]))
        for path, md5 in sorted(run["files"].items()):
            lines.append(f"  {path}  md5 {md5}")
    for entry in lineage.published:
        store = "its run is in this store" if entry["in_store"] else "its run is not in this store"
        lines.append(
            f"published {entry['path']}  md5 {entry['md5']}  run {entry['run_id']} at git {entry['git_commit']} "
            f"({store}), Parzen {entry['parzen'].get('test_ll_mean', float('nan')):.1f}"
        )
        changes = entry["code_changes"]
        if changes == []:
            lines.append(f"  HEAD trains with the same code as {entry['git_commit'][:7]}")
        elif changes:
            lines.append(f"  HEAD's training code differs from {entry['git_commit'][:7]}'s in {len(changes)} files:")
            lines += [f"    {change}" for change in changes]
    lines.append("")
    agree = "OK: the files, dvc.lock and MLflow agree"
    if lineage.not_checked:
        agree = "OK: nothing checked disagrees (see what was not checked, at the top)"
    lines += [f"MISMATCH {m.message}" for m in lineage.mismatches] or [agree]
    return "\n".join(lines)
