"""DVC stage `download`: MNIST from the public mirrors (or a local mirror) into data/mnist/; with an
argument, CIFAR-10 (`cifar10`, into data/cifar10/) or the user's TFD file (`tfd`, into data/tfd/)."""

import sys

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.data.mnist import prepare_mnist, resolve_mirror
from advnets.params import load_params
from advnets.pipeline.stage import run_stage


def main() -> None:
    params = load_params()
    dataset = sys.argv[1] if len(sys.argv) > 1 else "mnist"
    if dataset == "cifar10":
        from advnets.data.cifar10 import prepare_cifar10
        from advnets.data.cifar10 import resolve_mirror as cifar10_mirror

        prepare_cifar10("data/cifar10", mirror=cifar10_mirror(params.cifar10.data.mirror))
    elif dataset == "tfd":
        from advnets.data.tfd import prepare_tfd

        prepare_tfd(params.tfd.data.mat_path, "data/tfd")
    else:
        data = params.data
        prepare_mnist(
            "data/mnist",
            mirror=resolve_mirror(data.mirror),
            train_size=data.train_size,
            valid_size=data.valid_size,
        )


if __name__ == "__main__":
    run_stage("download", main)
