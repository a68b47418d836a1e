"""DVC stage `train`: the paper's GAN on MNIST; resumes from models/checkpoint.pt if interrupted."""

from advnets.params import load_params
from advnets.stage import run_stage
from advnets.train import run_training


def main() -> None:
    run_training(load_params())


if __name__ == "__main__":
    run_stage("train", main)
