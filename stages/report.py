"""DVC stage `report`: metrics/results.md from the metrics files, also logged to the training run."""

import json
from pathlib import Path

from advnets import tracking
from advnets.atomic import write_text
from advnets.params import load_params
from advnets.report import results_markdown
from advnets.stage import run_stage

RESULTS = "metrics/results.md"


def main() -> None:
    params = load_params()
    metrics = {name: json.loads(Path(f"metrics/{name}.json").read_text()) for name in ("train", "parzen", "toy")}
    write_text(RESULTS, results_markdown(params, metrics["train"], metrics["parzen"], metrics["toy"]))
    read = {"train.seed": params.train.seed, "train.update": params.train.update}  # its params in dvc.yaml
    tracking.record_stage("report", read, artifacts=[RESULTS])


if __name__ == "__main__":
    run_stage("report", main)
