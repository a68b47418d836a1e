"""DVC stage `download`: MNIST from the public mirrors (or a local mirror) into data/mnist/."""

from advnets.data import prepare_mnist, resolve_mirror
from advnets.params import load_params
from advnets.stage import run_stage


def main() -> None:
    data = load_params().data
    prepare_mnist(
        "data/mnist",
        mirror=resolve_mirror(data.mirror),
        train_size=data.train_size,
        valid_size=data.valid_size,
    )


if __name__ == "__main__":
    run_stage("download", main)
