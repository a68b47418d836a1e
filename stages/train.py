"""DVC stage `train`: the paper's GAN on MNIST, or with an argument another dataset's GAN
(cifar10.fc, cifar10.conv, tfd.pretrain, tfd); resumes from its checkpoint if interrupted."""

import sys

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.params import load_params
from advnets.pipeline.stage import run_stage
from advnets.pipeline.train import run_gan_training, run_training


def main() -> None:
    params = load_params()
    if len(sys.argv) > 1:
        run_gan_training(params, sys.argv[1])
    else:
        run_training(params)


if __name__ == "__main__":
    run_stage("train", main)
