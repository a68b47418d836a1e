"""The paper's other datasets as the GANs of params.yaml use them: which images train each GAN,
their shape, how to show them and where they come from (their files: advnets.pipeline.paths)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from advnets.params import GANS as GAN_SECTIONS
from advnets.params import Params


@dataclass(frozen=True)
class GanData:
    dataset: str  # the folder under data/ (the download stage's output)
    image_shape: tuple[int, int, int]  # (channels, rows, cols) of the flat vectors
    display: str  # advnets.gan.sampling.for_display: "unit" ([0, 1] pixels) or "gcn"
    source: str  # for MLflow's dataset input

    def images(self, params: Params, split: str, root: str | Path = "data") -> torch.Tensor:
        """train: the images G learns; valid: the validation images (the monitor's)."""
        if self.dataset == "cifar10":
            from advnets.data.cifar10 import load_cifar10

            return load_cifar10(split, root)[0]
        from advnets.data.tfd import load_tfd

        return load_tfd("unlabeled" if split == "train" else split, params.tfd.data.fold, root)


CIFAR10 = GanData("cifar10", (3, 32, 32), "gcn", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
TFD = GanData("tfd", (1, 48, 48), "unit", "TFD_48x48.mat (Toronto Face Database, user-supplied)")
# Each GAN section of params.yaml (advnets.params.GANS) with its dataset, named by its first part.
GANS = {gan: {"cifar10": CIFAR10, "tfd": TFD}[gan.split(".")[0]] for gan in GAN_SECTIONS}
