"""The MNIST generator as an MLflow pyfunc, logged from code (MLflow's "models from code": this
file is the model's definition; advnets.provenance.logged_model logs it): predict(z) = G(z), noise
float32 (n, noise_dim) to images float32 (n, 784) in [0, 1]."""

import json
from pathlib import Path

import mlflow
import numpy as np
import torch


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from advnets.gan.sampling import load_generator
        from advnets.params import ModelParams

        model = ModelParams.model_validate(json.loads(Path(context.artifacts["model_params"]).read_text()))
        self.generator = load_generator(context.artifacts["weights"], model).eval()

    def predict(self, context, model_input: np.ndarray, params=None):  # a hint MLflow takes as "no schema from hints"
        z = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.no_grad():
            return self.generator(z).numpy()


mlflow.models.set_model(GeneratorModel())
