"""DVC stage `validate`: the whole of params.yaml checked, every key and value (advnets.params).
It depends on every parameter, so `dvc repro` checks the file after any edit, even one no other
stage reads (an unknown key); each stage also checks it before it computes anything."""

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.params import load_params
from advnets.pipeline.stage import run_stage


def main() -> None:
    load_params()
    print("params.yaml: every key known and every value valid")


if __name__ == "__main__":
    run_stage("validate", main)
