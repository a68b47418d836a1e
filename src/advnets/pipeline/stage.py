"""What every DVC stage script shares: its outputs replace the previous ones together or not at
all, and a clean exit on a user-facing error or an interruption."""

from __future__ import annotations

import sys
from collections.abc import Callable

from advnets.atomic import outputs_together, sweep
from advnets.errors import AdvnetsError

# What an interrupted stage keeps, and how it goes on. Its outputs are those of its last good run
# (DVC keeps them in place: `persist: true`; the stage replaces them only when it has finished).
ON_INTERRUPT = {
    "train": "its outputs are those of the last finished training; `dvc repro` resumes from the last "
             "epoch it checkpointed, if it finished one",
}
OUTPUT_FOLDERS = ("data", "models", "metrics", "figures")  # where the stages write, under a pipeline's folder
INTERRUPTED = 130  # the shell's exit status for a process ended by SIGINT (128 + 2)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(), its outputs held back until it succeeds (atomic.outputs_together: a
    failed or killed stage leaves the previous ones). A fault the user can act on ends it with one
    line and exit code 1 (an AdvnetsError: its message; a file that cannot be written, a full disk;
    the MLflow store refusing or failing), Ctrl-C with one line saying what was kept and how to go
    on (its MLflow run is marked KILLED on the way). Anything else is a bug: its traceback is kept."""
    for folder in OUTPUT_FOLDERS:
        sweep(folder)  # what a killed run of any stage left
    try:
        with outputs_together():
            main()
    except AdvnetsError as exc:
        sys.exit(f"{name}: error: {exc}")
    except KeyboardInterrupt:
        kept = ON_INTERRUPT.get(name, "its previous outputs are kept; `dvc repro` runs it again")
        print(f"{name}: interrupted; {kept}", file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED)
    except OSError as exc:
        sys.exit(f"{name}: error: {_os_error(exc)}")
    except Exception as exc:
        store = _store_error(exc)
        if store is None:
            raise
        sys.exit(f"{name}: error: {store}")


def _os_error(exc: OSError) -> str:
    if exc.filename is None:
        return str(exc.strerror or exc)
    return f"{exc.strerror or exc}: {exc.filename}"


# What marks an MLflow error as the store's fault (unreachable, read-only, not a database), not a bug.
_UNREACHABLE = ("Max retries exceeded", "Failed to establish a new connection", "Connection refused",
                "Read timed out", "TEMPORARILY_UNAVAILABLE")
_STORE_BROKEN = ("OperationalError", "DatabaseError", "readonly database", "not a database", "disk I/O error", "malformed")


def _store_error(exc: Exception) -> str | None:
    """One line for a fault of the MLflow store (read-only, corrupt, unreachable), or None: any
    other MLflow error (a bad request, a bug) keeps its traceback."""
    mlflow, sqlalchemy = sys.modules.get("mlflow"), sys.modules.get("sqlalchemy.exc")
    if mlflow is not None and isinstance(exc, mlflow.exceptions.MlflowException):
        message = f"{exc.message} {exc.error_code}"
    elif sqlalchemy is not None and isinstance(exc, (sqlalchemy.OperationalError, sqlalchemy.DatabaseError)):
        message = str(exc.orig if getattr(exc, "orig", None) is not None else exc)
    else:
        return None
    unreachable = any(mark in message for mark in _UNREACHABLE)
    if not unreachable and not any(mark in message for mark in _STORE_BROKEN):
        return None
    uri = mlflow.get_tracking_uri() if mlflow is not None else "?"
    message = " ".join(str(getattr(exc, "message", message)).split())
    if len(message) > 300:
        message = message[:300] + "..."
    patience = ""
    if unreachable and uri.startswith(("http://", "https://")):
        import os

        patience = (f" (gave up after {os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '?')} retries of "
                    f"{os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '?')} s each: MLFLOW_HTTP_REQUEST_MAX_RETRIES, "
                    "MLFLOW_HTTP_REQUEST_TIMEOUT)")
    return f"the MLflow store at {uri} failed{patience}: {message}"
