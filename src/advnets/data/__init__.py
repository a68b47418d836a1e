"""The datasets: MNIST (download, verify, split), CIFAR-10, TFD and the registry of the other
datasets' GANs. `from advnets.data import load_mnist` reads a prepared MNIST split."""

from advnets.data.mnist import load_mnist, prepare_mnist

__all__ = ["load_mnist", "prepare_mnist"]
