"""DVC stage `toy`: Figure 1 from a real 1-D GAN, with the paper's theory checked numerically."""

import json

from advnets import figures
from advnets.atomic import write_csv, write_text
from advnets.params import load_params
from advnets.stage import run_stage
from advnets.toy import run_toy


def main() -> None:
    result = run_toy(load_params())
    figures.figure1("figures/figure1.png", result.x, result.p_data, result.snapshots)
    figures.jsd_curve("figures/toy_jsd.png", result.curve)
    write_text("metrics/toy.json", json.dumps(result.checks, indent=2) + "\n")
    write_csv("metrics/toy_jsd.csv", result.curve)


if __name__ == "__main__":
    run_stage("toy", main)
