"""DVC stage `parzen`: the paper's Parzen-window protocol on the samples, with calibration baselines;
with the argument `tfd`, TFD's protocol (sigma per fold, the standard error across folds)."""

import sys

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.params import load_params
from advnets.pipeline.parzen import run_parzen
from advnets.pipeline.stage import run_stage


def main() -> None:
    params = load_params()
    if sys.argv[1:] == ["tfd"]:
        from advnets.pipeline.gans import tfd_parzen

        metrics = tfd_parzen(params)
        print(f"TFD Parzen log-likelihood over {metrics['n_folds']} folds: "
              f"{metrics['test_ll_mean']:.1f} ± {metrics['test_ll_se']:.1f} (standard error across folds)")
        return
    metrics = run_parzen(params)
    print(
        f"Parzen log-likelihood on {metrics['n_test']} test images: "
        f"{metrics['test_ll_mean']:.1f} ± {metrics['test_ll_se']:.1f} (sigma {metrics['sigma']:.4f}); "
        f"real training images as samples: {metrics['baselines']['real_training_images']['test_ll_mean']:.1f}"
    )


if __name__ == "__main__":
    run_stage("parzen", main)
