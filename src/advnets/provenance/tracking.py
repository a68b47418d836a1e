"""MLflow tracking: the embedded sqlite store at the repository root unless MLFLOW_TRACKING_URI
says otherwise, absolute paths throughout, and the lineage tags every run carries."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import mlflow
import sqlalchemy
import torch
from filelock import FileLock
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import Metric, Param

from advnets.atomic import pending, process_alive, write_text
from advnets.params import changes_results, param_strings
from advnets.provenance import layers, repository

# MLflow's sqlite store logs every database error with its traceback before raising it as an
# MlflowException; a stage says a store's fault in one line (advnets.pipeline.stage), and any other
# error keeps its traceback there, the database's error included: the log would say it twice.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    """False for what SQLAlchemy logs when Ctrl-C cut a query short ("Error closing cursor", with
    its traceback, through the connection pool's logger): the stage says it was interrupted, in one
    line."""
    error = record.exc_info[1] if record.exc_info else None
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return False
        error = error.__context__
    return True


for _pool in (sqlalchemy.pool.QueuePool, sqlalchemy.pool.NullPool, sqlalchemy.pool.SingletonThreadPool,
              sqlalchemy.pool.StaticPool, sqlalchemy.engine.Engine):  # what MLflow's stores use
    # each class logs under its namespace if it names one (Engine), else its qualified name
    logging.getLogger(getattr(_pool, "_sqla_logger_namespace", f"{_pool.__module__}.{_pool.__name__}")).addFilter(_not_an_interrupt)

RUN_RECORD = "models/mlflow-run.json"  # the train stage's pointer to its MLflow run
MD5_TAG = "dvc.md5."  # tag prefix: dvc.md5.models/generator.pt = the file's md5
TRAINED_BY_TAG = "trained_by"  # on a training run made outside the pipeline (advnets.provenance.record): the script
# The runs that trained a model: the train stage's, and those recorded from outside the pipeline.
TRAINING_RUN_FILTERS = ("tags.DVC_STAGE = 'train'", f"tags.{TRAINED_BY_TAG} LIKE '%'")


def is_training_run(tags: dict[str, str]) -> bool:
    """Whether a run with these tags trained a model (TRAINING_RUN_FILTERS)."""
    return tags.get("DVC_STAGE") == "train" or TRAINED_BY_TAG in tags


def workspace() -> Path:
    """The DVC repository the stage runs in, whose files, dvc.lock and commit a run records: the
    nearest folder holding `.dvc/` from the working directory up (DVC runs a stage in its wdir,
    inside its repository), else the working directory. Not $DVC_ROOT: for a queued or `--temp`
    experiment DVC sets it to the repository that queued the run (dvc/repo/experiments/queue/base.py,
    "point to the parent DVC repo"), while the stage runs, and writes its outputs and dvc.lock, in
    a temporary copy of its own."""
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / ".dvc").is_dir()), here)


def repo_root() -> Path:
    """The repository whose MLflow store the runs belong to: the outermost DVC repository around
    the workspace. Usually the workspace itself; a queued experiment (`dvc exp run --queue`) runs
    in a temporary copy, <repo>/.dvc/tmp/exps/<tmp>/, that DVC deletes afterwards, and another
    dataset's pipeline is a DVC repository of its own inside this one (pipelines/<dataset>/): their
    runs go to the store of the repository around them, one store for the project."""
    here = workspace()
    return next((folder for folder in reversed((here, *here.parents)) if (folder / ".dvc").is_dir()), here)


_uri_set_here: str | None = None  # our default store, once mlflow.set_tracking_uri exported it


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user set it (not as an earlier call of ours exported it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return uri if uri and uri != _uri_set_here else None


def tracking_uri(root: Path) -> str:
    return user_tracking_uri() or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The file of a sqlite store URI, read as SQLAlchemy reads it (query string, %-escapes,
    sqlite+driver); None for a server or an in-memory store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:  # not a database URL, e.g. "databricks"
        return None
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None


def missing_store(uri: str) -> bool:
    """Whether uri names a sqlite file that does not exist: MLflow would create an empty store
    just by opening it (a fresh clone has none: mlflow.db is not in git)."""
    path = sqlite_file(uri)
    return path is not None and not path.is_file()


# A server that does not answer: MLflow's own defaults (120 s a request, 7 retries with backoff)
# leave a stage silent for minutes before it fails. Ours fail in well under a minute, before any
# compute; the user's own settings win.
HTTP_PATIENCE = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def use_store(root: Path) -> str:
    """Point MLflow at the project's store (the user's MLFLOW_TRACKING_URI wins); returns its URI."""
    global _uri_set_here
    user = user_tracking_uri()
    uri = user or tracking_uri(root)
    if uri.startswith(("http://", "https://")):
        for key, value in HTTP_PATIENCE.items():
            os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(uri)
    _uri_set_here = None if user else uri  # a user's URI stays the user's on the next call
    return uri


def store_lock(uri: str) -> contextlib.AbstractContextManager:
    """A lock across processes on a sqlite store, for opening it and creating an experiment:
    processes that open a new store at once (`dvc queue start -j 2` on a fresh clone) would
    otherwise all create its tables, and all but one fail ("duplicate column name"), or create one
    experiment twice. A server takes care of its own, and no process creates a store in a folder
    it cannot write (a read-only store is read without the lock)."""
    path = sqlite_file(uri)
    if path is None or not os.access(path.parent, os.W_OK):
        return contextlib.nullcontext()
    return FileLock(f"{path}.lock")


def client(uri: str | None = None) -> mlflow.MlflowClient:
    """A client of the store at uri (default: the one MLflow points at), made under `store_lock`:
    making one opens the store, and opening a new one creates its tables."""
    uri = uri or mlflow.get_tracking_uri()
    with store_lock(uri):
        return mlflow.MlflowClient(uri)


def experiment_id(name: str, root: Path) -> str:
    """Point MLflow at the store and open it; the experiment's id, created with an absolute
    artifact folder beside our embedded store (a user's own server decides its artifact store).
    Runs of it that a process now dead left RUNNING are marked KILLED on the way."""
    own_store = user_tracking_uri() is None
    with store_lock(use_store(root)):
        existing = mlflow.get_experiment_by_name(name)  # opens the store: MLflow creates its tables
        if existing is not None:
            if existing.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before we set it
                mlflow.MlflowClient().set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            end_dead_runs(mlflow.MlflowClient(), existing.experiment_id)
            return existing.experiment_id
        location = (root / "mlartifacts").resolve().as_uri() if own_store else None
        try:
            return mlflow.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except mlflow.exceptions.MlflowException as exc:
            # a server has no file lock: another process may have created it since we looked
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or mlflow.get_experiment_by_name(name) is None:
                raise
            return mlflow.get_experiment_by_name(name).experiment_id


OWNER_TAG = "advnets.process"  # host:pid of the process running the run, so that a dead one's run can be ended


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def end_dead_runs(store: mlflow.MlflowClient, experiment: str) -> list[str]:
    """Mark KILLED each RUNNING run of the experiment whose process, on this machine, is gone (a
    kill -9, a power cut): MLflow would show it running forever. A run of another machine, or of
    a process still alive (a queued experiment's worker), is left alone. Returns their ids."""
    host, ended = socket.gethostname(), []
    for run in store.search_runs([experiment], "attributes.status = 'RUNNING'", max_results=1000):
        where, _, pid = run.data.tags.get(OWNER_TAG, "").rpartition(":")
        if where == host and pid.isdigit() and not process_alive(int(pid)):
            store.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
            print(f"warning: MLflow run {run.info.run_id} ({run.info.run_name}) was left RUNNING by process {pid}, "
                  "which has ended: marked KILLED")
    return ended


# MLflow 3's UI opens an experiment by its kind: without this tag it may show the GenAI "Traces"
# overview; "custom_model_development" is the kind its own experiment-type switch sets for model
# training, which opens on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def file_tags(root: Path, stage: str, pipeline: str = "", files: tuple[str, ...] = ("deps", "outs")) -> dict[str, str]:
    """`dvc.md5.<path>` for each dependency and output (or only those of `files`) of the stage that
    exists now. Code is recorded as it was loaded, file by file (layers.loaded_code): a folder of
    code is a dependency, and its dvc.lock hash is of the stage's last run, not of this one."""
    declared, locked = repository.stage_files(root, stage, pipeline), repository.locked_md5s(root, pipeline)
    tags = {}
    for path in [path for kind in files for path in declared[kind]]:
        if path in declared["deps"] and layers.is_code(path) and (root / path).is_dir():
            continue  # recorded file by file, below
        md5 = repository.content_md5(root, path, locked)
        if md5:
            tags[f"{MD5_TAG}{path}"] = md5
    if "deps" in files:
        # by path from the checkout that holds the code: a pipeline in its own folder
        # (pipelines/tfd) runs the project's stages/ and src/, outside that folder
        code_root = root if (root / "src").is_dir() else repository.project(root)
        tags.update({f"{MD5_TAG}{path}": md5 for path, md5 in layers.loaded_code(code_root).items()})
    return tags


def lineage_tags(
    root: Path, stage: str, device: torch.device | None = None, pipeline: str = "", files: tuple[str, ...] = ("deps", "outs")
) -> dict[str, str]:
    """What every run a stage writes carries: stage, DVC experiment, git state, torch, device and
    the md5 of the stage's files (`files`: which of them), so MLflow joins dvc.lock by content.
    Read when the stage's code was loaded: the tree may change while a long stage runs."""
    tags = {**repository.git_state(root), "torch.version": torch.__version__, "DVC_STAGE": stage}
    if pipeline:
        tags["DVC_PIPELINE"] = pipeline
    if device is not None:
        # Imported here: only the stages that train pass a device, and they depend on device.py.
        from advnets.device import device_name

        tags["device"] = str(device)
        tags["device.name"] = device_name(device)  # the machine: the GPU, or the CPU model and cores
    if os.environ.get("DVC_EXP_NAME"):
        tags["DVC_EXP_NAME"] = os.environ["DVC_EXP_NAME"]
    return {**tags, **file_tags(root, stage, pipeline, files)}


def run_name(base: str, epochs: int, run_id: str, origin: str | None = None) -> str:
    """A training run's name, unique and meaningful: where it came from (the DVC experiment, else
    `repro`, or `origin`), what it is (`base`: e.g. seed1-simultaneous), its length, and the first
    six characters of its run id, which no other run shares in practice."""
    origin = origin or os.environ.get("DVC_EXP_NAME") or "repro"
    return f"{origin}-{base}-{epochs}ep-{run_id[:6]}"


def run_description(tags: dict[str, str], stage: str, what: str) -> str:
    """The run page's description (the `mlflow.note.content` tag): what made the run, from its
    lineage tags."""
    exp = tags.get("DVC_EXP_NAME")
    made_by = f"`dvc exp run` (DVC experiment `{exp}`)" if exp else "`dvc repro`"
    pipeline = f" of the pipeline in {tags['DVC_PIPELINE']}" if tags.get("DVC_PIPELINE") else ""
    dirty = " with uncommitted changes" if tags.get("git.dirty") == "true" else ""
    machine = f" on {tags['device.name']}" if tags.get("device.name") else ""
    return (f"{what}, made by the `{stage}` stage{pipeline} under {made_by} at git commit "
            f"{tags.get('git.commit', '?')[:12]}{dirty}{machine}, torch {tags.get('torch.version', '?')}. "
            "The `dvc.md5.*` tags hold the md5 of every file the stage read and wrote, as dvc.lock records "
            "them; `advnets lineage --run <run id>` checks them against a workspace.")


def end_status(error: BaseException) -> str:
    """How a run that `error` ended is marked: KILLED when the user interrupted it (Ctrl-C), else FAILED."""
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


# A resumed run's session compares these, and the md5 of each of the stage's dependencies, with
# the tags the previous session left; `resumed_after_epoch.<E>` keeps what changed, or "nothing".
RESUME_TAG = "resumed_after_epoch."
COMPARED_ON_RESUME = ("git.commit", "git.dirty", "torch.version", "device", "device.name")
TAG_VALUE_LIMIT = 5000  # characters: within every MLflow version's limit (5000 in older ones, 8000 now)


def lineage_changes(before: dict[str, str], after: dict[str, str], deps: list[str]) -> list[str]:
    """'key: old -> new' for each lineage tag that differs between two sessions of one run (a tag
    one session lacks, e.g. one added to the code later, is '(not recorded)')."""
    keys = [*COMPARED_ON_RESUME, *(f"{MD5_TAG}{dep}" for dep in deps)]
    unknown = "(not recorded)"
    return [f"{key}: {before.get(key, unknown)} -> {after.get(key, unknown)}" for key in keys if before.get(key) != after.get(key)]


def resumes(tags: dict[str, str]) -> list[dict[str, Any]]:
    """[{epoch, changes}] for each session that resumed the run, in epoch order, from its tags."""
    found = [{"epoch": int(k.removeprefix(RESUME_TAG)), "changes": v} for k, v in tags.items() if k.startswith(RESUME_TAG)]
    return sorted(found, key=lambda resume: resume["epoch"])


MACHINE_CHANGE = re.compile(r"device\.name: (.+?) -> (.+?)(?=; |$)")


def machines(tags: dict[str, str]) -> list[str]:
    """The machines a run trained on, in order: the device.name changes its resumes recorded, else
    its device.name tag (or, for runs before that tag, its device)."""
    used: list[str] = []
    for resume in resumes(tags):
        for machine in (m for change in MACHINE_CHANGE.findall(resume["changes"]) for m in change):
            if machine != "(not recorded)" and (not used or used[-1] != machine):
                used.append(machine)
    now = tags.get("device.name") or tags.get("device")
    if now and (not used or used[-1] != now):
        used.append(now)
    return used


def log_dataset(name: str, source_url: str, digest: str | None, context: str) -> None:
    """The data as an MLflow dataset input, its digest the DVC md5 (36 characters fit MLflow's)."""
    if digest:
        dataset = MetaDataset(HTTPDatasetSource(source_url), name=name, digest=digest)
        mlflow.log_input(dataset, context=context)


def log_flat_params(flat: dict[str, Any]) -> None:
    mlflow.log_params(param_strings(flat))


def log_flat_params_to(client: mlflow.MlflowClient, run_id: str, flat: dict[str, Any]) -> None:
    """log_flat_params, to a run that is not the active one."""
    params = [Param(k, v) for k, v in param_strings(flat).items()]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start : start + 100])


def write_run_record(path: Path, run: mlflow.ActiveRun, root: Path) -> None:
    """The small output that tells later stages which run to add their results to."""
    record = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "tracking_uri": tracking_uri(root)}
    write_text(path, json.dumps(record, indent=2) + "\n")


def read_run_id(path: str | Path = RUN_RECORD) -> str:
    """The training run named by the record write_run_record left."""
    return json.loads(Path(path).read_text())["run_id"]


def record_stage(
    stage: str,
    params: dict[str, Any],
    metrics: dict[str, float] | None = None,
    artifacts: list[str | Path] = (),
    headline: dict[str, float] | None = None,
    run_record: str | Path = RUN_RECORD,
    pipeline: str = "",
) -> str | None:
    """Record a stage that follows training, for the model it worked on: a nested run (run name =
    the stage) under the training run, with the params the stage read, its metrics and the lineage
    tags of its files as written; and on the training run itself, the model's one row in the UI,
    its params, `headline` metrics and artifacts (in a folder named after the stage). MLflow params
    are write-once: if the training run already holds one of them with another value that changes
    results (a rerun with another sample.n), the row would pair this result with the other params,
    so the result and artifacts go to the nested run only, with a warning. Returns the nested run's
    id, or None when there is no training run to log to: no run record (the report stage rerun on
    committed metrics, with no model in the workspace), no store, or the run not in the store."""
    if not Path(run_record).exists():
        print(f"warning: there is no training run record at {run_record}; {stage} results not logged to MLflow")
        return None
    root = repo_root()
    uri, parent_id = use_store(root), read_run_id(run_record)  # pointing at a store opens nothing
    if missing_store(uri):  # opening it would create it, empty
        print(f"warning: there is no MLflow store at {uri}; {stage} results not logged there")
        return None
    store = client(uri)
    try:
        parent = store.get_run(parent_id)
    except mlflow.exceptions.MlflowException:
        print(f"warning: MLflow run {parent_id} is not in {uri}; {stage} results not logged there")
        return None
    values = param_strings(params)
    logged = parent.data.params
    differ = sorted(key for key, value in values.items() if key in logged and logged[key] != value)
    for key in differ:
        print(f"warning: run {parent_id} keeps {key}={logged[key]} (now {values[key]})")
    on_parent = not any(changes_results(key) for key in differ)
    now = int(time.time() * 1000)
    if on_parent:
        # Through the client: reopening the finished training run with start_run would mark it
        # FAILED if anything here raised, and the model would drop out of the comparisons.
        store.log_batch(
            parent_id,
            metrics=[Metric(k, v, now, 0) for k, v in (headline or {}).items()],
            params=[Param(k, v) for k, v in values.items() if k not in logged],
        )
    end_dead_runs(store, parent.info.experiment_id)
    tags = {"mlflow.parentRunId": parent_id, OWNER_TAG: owner(), **lineage_tags(workspace(), stage, pipeline=pipeline)}
    child = store.create_run(parent.info.experiment_id, run_name=stage, tags=tags)
    if not on_parent:
        print(f"warning: so this {stage} result, made with other params than run {parent_id} holds, is logged "
              f"only in its nested run {child.info.run_id}, not on the training run")
    status = "FAILED"
    try:
        store.log_batch(
            child.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, v) for k, v in values.items()],
        )
        for path in artifacts:
            store.log_artifact(parent_id if on_parent else child.info.run_id, str(pending(path)), artifact_path=stage)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        store.set_terminated(child.info.run_id, status)
    return child.info.run_id


@contextlib.contextmanager
def _killed_on_interrupt():
    """Inside `with mlflow.start_run()`: mark the run KILLED, not FAILED, when the user interrupts it."""
    try:
        yield
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise


def record_toy(experiment: str, read: dict[str, Any], checks: dict[str, Any], curve: list[dict[str, float]], figures: list[str]) -> None:
    """The toy stage's MLflow run (run name `toy-1d`): the params it read, its checks flattened to
    metrics (group.key), the JSD per G step and its figures."""
    root = repo_root()
    with mlflow.start_run(experiment_id=experiment_id(experiment, root), run_name="toy-1d"), _killed_on_interrupt():
        log_flat_params(read)
        mlflow.set_tags({OWNER_TAG: owner(), **lineage_tags(workspace(), "toy")})
        flat_checks = {
            f"{group}.{key}" if isinstance(values, dict) else group: value
            for group, values in checks.items()
            for key, value in (values.items() if isinstance(values, dict) else [(group, values)])
        }
        mlflow.log_metrics(flat_checks)
        for row in curve:
            mlflow.log_metric("jsd", row["jsd"], step=int(row["step"]))
        for path in figures:
            mlflow.log_artifact(str(pending(path)), artifact_path="figures")
