"""DVC stage `sample`: sample.n samples of the trained generator into data/samples.npy; with an
argument, another dataset's GAN (cifar10.fc, cifar10.conv, tfd) into data/<gan>/samples.npy."""

import sys

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.gan.sampling import draw_samples, load_generator, save_samples
from advnets.params import load_params
from advnets.pipeline.stage import run_stage
from advnets.provenance import tracking


def main() -> None:
    params = load_params()
    if len(sys.argv) > 1:
        from advnets.pipeline.gans import sample

        sample(params, sys.argv[1])
        return
    generator = load_generator("models/generator.pt", params.model)
    save_samples("data/samples.npy", draw_samples(generator, params.model, params.sample.n, params.sample.seed))
    tracking.record_stage("sample", params.flat("model", "sample"))


if __name__ == "__main__":
    run_stage("sample", main)
