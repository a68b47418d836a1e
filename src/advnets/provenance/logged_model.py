"""The selected MNIST generator as an MLflow model: a pyfunc that maps noise z to images, with a
signature, an input example, pinned requirements and the advnets code it needs, registered under
one name so that every training is a version of it (`advnets publish` gives the published one an
alias). Anyone with the store can then draw samples without this repository:

    model = mlflow.pyfunc.load_model("models:/advnets-mnist-generator@seed-0")
    images = model.predict(z)   # z: float32 (n, 100) from the noise prior -> float32 (n, 784) in [0, 1]
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

REGISTERED_NAME = "advnets-mnist-generator"
LOGGED_NAME = "generator"  # the logged model's name in its run
IMAGE_SIZE = 28 * 28


def signature(noise_dim: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, noise_dim))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, IMAGE_SIZE))]),
    )


def requirements() -> list[str]:
    """What loading the model needs, pinned to what ran: advnets itself travels as code."""
    import torchvision

    return [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}", "pydantic>=2", "pyyaml"]


def log_generator(weights: Path, model_params: dict[str, Any], example: np.ndarray, tags: dict[str, str]) -> Any:
    """Log the generator at `weights` (built from `model_params`, the model section of params.yaml)
    to the active run as a registered model version; returns MLflow's ModelInfo. The model is
    logged from code (advnets/provenance/generator_pyfunc.py, MLflow's "models from code"), not
    pickled, and carries the advnets package, so it loads where advnets is not installed."""
    import advnets

    with tempfile.TemporaryDirectory() as tmp, _no_progress_bars():
        params_file = Path(tmp) / "model_params.json"
        params_file.write_text(json.dumps(model_params, indent=2))
        return mlflow.pyfunc.log_model(
            name=LOGGED_NAME,
            python_model=str(Path(__file__).with_name("generator_pyfunc.py")),
            artifacts={"weights": str(weights), "model_params": str(params_file)},
            code_paths=[str(Path(advnets.__file__).parent)],
            signature=signature(example.shape[1]),
            input_example=example,
            pip_requirements=requirements(),
            registered_model_name=REGISTERED_NAME,
            tags=tags,
        )


@contextlib.contextmanager
def _no_progress_bars():
    """MLflow draws a progress bar for each artifact it reads back to check the input example: noise
    in a stage's log."""
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"]
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before


def version_of_run(client: mlflow.MlflowClient, run_id: str) -> Any | None:
    """The registered version logged by this training run, if any."""
    versions = client.search_model_versions(f"name = '{REGISTERED_NAME}' and run_id = '{run_id}'")
    return versions[0] if versions else None
