"""Fault injection for tests/pipeline/test_faults.py: Python loads this module at start-up when its
folder is on PYTHONPATH. In the process running the stage script $ADVNETS_TEST_KILL_STAGE (not in
DVC's own), it kills the process with SIGKILL, as `kill -9` or a power cut would, where
$ADVNETS_TEST_KILL_AT says:

  replace:NAME:N   at the N-th os.replace onto a path named NAME (the file is written, not yet renamed)
  copy:NAME        as a file named NAME is copied (MLflow storing an artifact)
  exit             as the stage ends after success (finished, not yet recorded by DVC)
"""

import os
import signal
import sys

_STAGE, _AT = os.environ.get("ADVNETS_TEST_KILL_STAGE"), os.environ.get("ADVNETS_TEST_KILL_AT", "")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if _STAGE and sys.argv and sys.argv[0].replace(os.sep, "/").endswith(_STAGE):
    how, _, where = _AT.partition(":")
    if how == "replace":
        name, _, nth = where.partition(":")
        real_replace, calls = os.replace, [0]

        def replace(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == name:
                calls[0] += 1
                if calls[0] == int(nth or 1):
                    _die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif how == "copy":
        import shutil

        def killing(real):
            def copy(src, dst, *args, **kwargs):
                if os.path.basename(os.fspath(src)) == where:
                    _die()
                return real(src, dst, *args, **kwargs)

            return copy

        for function in ("copy", "copy2", "copyfile", "copystat"):  # MLflow copies, then copies the file's times
            setattr(shutil, function, killing(getattr(shutil, function)))
    elif how == "exit":
        import atexit

        atexit.register(_die)
