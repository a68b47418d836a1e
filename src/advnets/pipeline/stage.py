"""What every DVC stage script shares: a clean exit on a user-facing error or an interruption."""

from __future__ import annotations

import sys
from collections.abc import Callable

from advnets.errors import AdvnetsError

# What an interrupted stage keeps, and how it goes on (DVC removed the stage's outputs before it
# ran; the stages that finished before it keep theirs, recorded in dvc.lock).
ON_INTERRUPT = {
    "train": "the checkpoint of the last finished epoch is kept; `dvc repro` resumes training from it",
}
INTERRUPTED = 130  # the shell's exit status for a process ended by SIGINT (128 + 2)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); a fault the user can act on ends it with one line and exit code 1
    (an AdvnetsError: its message; a file that cannot be written, a full disk; the MLflow store
    refusing or failing), Ctrl-C with one line saying what was kept and how to go on (its MLflow
    run is marked KILLED on the way). Anything else is a bug: its traceback is kept."""
    try:
        main()
    except AdvnetsError as exc:
        sys.exit(f"{name}: error: {exc}")
    except KeyboardInterrupt:
        kept = ON_INTERRUPT.get(name, "the stages that finished before it keep their outputs; `dvc repro` runs it again")
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
_STORE_BROKEN = ("OperationalError", "DatabaseError", "readonly database", "not a database", "disk I/O error")


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
