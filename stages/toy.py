"""DVC stage `toy`: Figure 1 from a real 1-D GAN, with the paper's theory checked numerically.
Its figures and checks also go to an MLflow run of their own (run name `toy-1d`)."""

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

import json

import mlflow

from advnets import figures, tracking
from advnets.atomic import write_csv, write_text
from advnets.params import load_params
from advnets.stage import run_stage
from advnets.toy import run_toy

FIGURES = ["figures/figure1.png", "figures/toy_jsd.png"]


def main() -> None:
    params = load_params()
    result = run_toy(params)
    figures.figure1(FIGURES[0], result.x, result.p_data, result.snapshots)
    figures.jsd_curve(FIGURES[1], result.curve)
    write_text("metrics/toy.json", json.dumps(result.checks, indent=2) + "\n")
    write_csv("metrics/toy_jsd.csv", result.curve)

    experiment = tracking.experiment_id(params.tracking.experiment, tracking.repo_root())
    with mlflow.start_run(experiment_id=experiment, run_name="toy-1d"):
        tracking.log_flat_params({**params.flat("model", "train", "toy"), "tracking.experiment": params.tracking.experiment})
        mlflow.set_tags(tracking.lineage_tags(tracking.workspace(), "toy"))
        flat_checks = {
            f"{group}.{key}" if isinstance(values, dict) else group: value
            for group, values in result.checks.items()
            for key, value in (values.items() if isinstance(values, dict) else [(group, values)])
        }
        mlflow.log_metrics(flat_checks)
        for row in result.curve:
            mlflow.log_metric("jsd", row["jsd"], step=int(row["step"]))
        for path in FIGURES:
            mlflow.log_artifact(path, artifact_path="figures")


if __name__ == "__main__":
    run_stage("toy", main)
