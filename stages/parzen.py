"""DVC stage `parzen`: the paper's Parzen-window protocol on the samples, with calibration baselines."""

from advnets.evaluate import run_parzen
from advnets.params import load_params
from advnets.stage import run_stage


def main() -> None:
    metrics = run_parzen(load_params())
    print(
        f"Parzen log-likelihood on {metrics['n_test']} test images: "
        f"{metrics['test_ll_mean']:.1f} ± {metrics['test_ll_se']:.1f} (sigma {metrics['sigma']:.4f}); "
        f"real training images as samples: {metrics['baselines']['real_training_images']['test_ll_mean']:.1f}"
    )


if __name__ == "__main__":
    run_stage("parzen", main)
