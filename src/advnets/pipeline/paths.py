"""Where the other datasets' GANs live in the repository: their DVC pipelines and stage names, and
the folders their stages write."""

from __future__ import annotations

from pathlib import Path


def slug(gan: str) -> str:
    """The GAN's name in paths: cifar10.fc -> cifar10_fc."""
    return gan.replace(".", "_")


def pipeline(gan: str) -> str:
    """The folder of the GAN's dvc.yaml."""
    return f"pipelines/{gan.split('.')[0]}"


def stage(kind: str, gan: str) -> str:
    """The DVC stage of this kind (train, sample, ...) for the GAN, as its pipeline names it:
    CIFAR-10's stages are a foreach over its two GANs (train@fc); TFD's first stage is `pretrain`."""
    if gan == "tfd.pretrain":
        return "pretrain"
    variant = gan.partition(".")[2]
    return f"{kind}@{variant}" if variant else kind


def models_dir(gan: str) -> Path:
    """Where the GAN's train stage writes its nets and MLflow run record."""
    return Path("models") / slug(gan)


def samples_path(gan: str) -> Path:
    return Path("data") / "samples" / f"{slug(gan)}.npy"


def figures_dir(gan: str) -> Path:
    return Path("figures") / slug(gan)
