"""params.yaml, the single source of parameters, loaded into typed and validated objects.

Every key is required (params.yaml holds the defaults, which reproduce the paper); unknown keys,
wrong types and out-of-range values are refused before any work, naming the full key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from advnets.errors import AdvnetsError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MNIST_TRAIN_IMAGES = 60_000


class ParamsError(AdvnetsError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names every bad key."""


class _Section(BaseModel):
    # strict: a YAML string "5" is not an int; extra: a misspelt key is refused, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataParams(_Section):
    mirror: str | None = Field(
        description="Local folder with the four MNIST .gz files; ADVNETS_MNIST_MIRROR overrides it."
    )
    train_size: int = Field(gt=0, description="Training split: the first N official training images.")
    valid_size: int = Field(gt=0, description="Validation split: the last N official training images.")

    @model_validator(mode="after")
    def _splits_fit(self) -> DataParams:
        if self.train_size + self.valid_size > MNIST_TRAIN_IMAGES:
            raise ValueError(
                f"train_size + valid_size must be <= {MNIST_TRAIN_IMAGES}, "
                f"got {self.train_size} + {self.valid_size}"
            )
        return self


class Params(_Section):
    data: DataParams


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "params"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if error["type"] == "value_error":  # a model validator: its message already quotes values
        return f"{key}: {message}"
    return f"{key}: {message}, got {error['input']!r}"


def validate(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping, raising ParamsError that lists every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ParamsError(f"invalid {source}:\n  {problems}") from None


def read_yaml(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The raw mapping in a params file (no validation)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    return validate(read_yaml(path), source=str(path))
