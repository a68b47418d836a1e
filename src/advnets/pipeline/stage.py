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
    """Run a stage's main(); an AdvnetsError ends it with its message and exit code 1, Ctrl-C with
    one line saying what was kept and how to go on (its MLflow run is marked KILLED on the way)."""
    try:
        main()
    except AdvnetsError as exc:
        sys.exit(f"{name}: error: {exc}")
    except KeyboardInterrupt:
        kept = ON_INTERRUPT.get(name, "the stages that finished before it keep their outputs; `dvc repro` runs it again")
        print(f"{name}: interrupted; {kept}", file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED)
