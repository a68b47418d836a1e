"""Training checkpoints: written atomically every epoch, resumed only with the same parameters."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from advnets.atomic import atomic_path
from advnets.errors import AdvnetsError
from advnets.params import unprefixed

# Keys that may change between an interrupted run and its resumption (under any prefix, e.g.
# cifar10.fc.train.epochs): more epochs continue the same run (the schedules do not depend on the
# total); logging cadence and the mirror change no weight.
RESUMABLE_CHANGES = {"train.epochs", "train.grid_every", "data.mirror"}


class ResumeError(AdvnetsError):
    """A checkpoint exists but cannot be continued: made with other training parameters, or its
    MLflow run is gone."""


def training_params(flat_params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in flat_params.items() if unprefixed(key) not in RESUMABLE_CHANGES}


def resumable_params(flat_params: dict[str, Any]) -> dict[str, Any]:
    """The rest: those a resume may change."""
    return {key: value for key, value in flat_params.items() if unprefixed(key) in RESUMABLE_CHANGES}


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def save(path: Path, state: dict[str, Any], flat_params: dict[str, Any], extra: dict[str, Any]) -> None:
    kept = training_params(flat_params)
    payload = {"state": state, "params": kept, "params_hash": params_hash(kept), **extra}
    with atomic_path(path, now=True) as tmp:  # now: even inside a stage, whose outputs wait for its end
        torch.save(payload, tmp)


def load(path: Path, flat_params: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at path, or None if there is none; refuses one made with other params."""
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    current = training_params(flat_params)
    if payload["params_hash"] != params_hash(current):
        saved = payload["params"]
        changed = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ResumeError(
            f"{path} was made with other training parameters ({details}); resume it with the "
            f"old values, or start over by removing it: rm {path}"
        )
    return payload
