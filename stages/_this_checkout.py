"""Imported first by every stage script: puts this checkout's src/ ahead of any installed advnets,
so that a stage runs the code whose commit and md5s its MLflow runs record. `dvc exp run --temp`
and `dvc queue` run the stages in copies of the repository, while an editable install (`pip
install -e .`) points at the workspace's src/, which may have changed since the run was queued."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
