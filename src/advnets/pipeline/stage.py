"""What every DVC stage script shares: a clean exit on a user-facing error."""

from __future__ import annotations

import sys
from collections.abc import Callable

from advnets.errors import AdvnetsError


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); an AdvnetsError ends it with its message and exit code 1."""
    try:
        main()
    except AdvnetsError as exc:
        sys.exit(f"{name}: error: {exc}")
