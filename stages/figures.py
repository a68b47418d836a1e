"""DVC stage `figures`: Figures 2 and 3 of the paper, the training curves and the sigma sweep; with
an argument, Figure 2's panel of another dataset's GAN (cifar10.fc, cifar10.conv, tfd)."""

import json
import sys
from pathlib import Path

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.data.mnist import load_mnist
from advnets.gan.sampling import load_generator
from advnets.params import load_params
from advnets.pipeline.stage import run_stage
from advnets.provenance import tracking
from advnets.report import figures

OUT = {
    "figure2": "figures/figure2.png",
    "figure3": "figures/figure3.png",
    "curves": "figures/training_curves.png",
    "sweep": "figures/parzen_sigmas.png",
}


def main() -> None:
    params = load_params()
    if len(sys.argv) > 1:
        from advnets.pipeline.gans import figure2

        figure2(params, sys.argv[1])
        return
    fig = params.figures
    generator = load_generator("models/generator.pt", params.model)
    figures.figure2(
        OUT["figure2"], generator, params.model, load_mnist("train")[0],
        fig.sample_rows, fig.sample_cols, fig.seed, fig.scale,
    )
    frames = figures.interpolation(generator, params.model, fig.interp_rows, fig.interp_frames, fig.seed)
    figures.figure3(OUT["figure3"], frames, fig.scale)
    figures.training_curves(OUT["curves"], "metrics/train_curve.csv")
    parzen = json.loads(Path("metrics/parzen.json").read_text())
    figures.sigma_sweep(OUT["sweep"], "metrics/parzen_sigmas.csv", parzen["sigma"])

    tracking.record_stage("figures", params.flat("model", "figures"), artifacts=list(OUT.values()))


if __name__ == "__main__":
    run_stage("figures", main)
