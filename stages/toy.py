"""DVC stage `toy`: Figure 1 from a real 1-D GAN, with the paper's theory checked numerically.
Its figures and checks also go to an MLflow run of their own (run name `toy-1d`)."""

import json

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.atomic import write_csv, write_text
from advnets.params import load_params
from advnets.pipeline.stage import run_stage
from advnets.provenance import tracking
from advnets.report import figures
from advnets.toy import params_read, run_toy

FIGURES = ["figures/figure1.png", "figures/toy_jsd.png"]


def main() -> None:
    params = load_params()
    result = run_toy(params)
    figures.figure1(FIGURES[0], result.x, result.p_data, result.snapshots)
    figures.jsd_curve(FIGURES[1], result.curve)
    write_text("metrics/toy.json", json.dumps(result.checks, indent=2) + "\n")
    write_csv("metrics/toy_jsd.csv", result.curve)
    read = {**params_read(params), "tracking.experiment": params.tracking.experiment}
    tracking.record_toy(params.tracking.experiment, read, result.checks, result.curve, FIGURES)


if __name__ == "__main__":
    run_stage("toy", main)
