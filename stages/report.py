"""DVC stage `report`: metrics/results.md from the metrics files, also logged to MLflow (see
tracking.record_stage)."""

import json
from pathlib import Path

import _this_checkout  # noqa: F401  first: this checkout's advnets, not an installed one

from advnets.atomic import write_text
from advnets.params import load_params
from advnets.pipeline.stage import run_stage
from advnets.provenance import tracking
from advnets.report.results import results_markdown
from advnets.report.summaries import stored_summary

RESULTS = "metrics/results.md"
SEEDS = Path("metrics/seeds.json")  # written by `advnets seeds` from the MLflow store
VARIANTS = Path("metrics/variants.json")  # written by `advnets variants` from the MLflow store


def main() -> None:
    params = load_params()
    metrics = {name: json.loads(Path(f"metrics/{name}.json").read_text()) for name in ("train", "parzen", "toy")}
    seeds, variants = stored_summary(params, SEEDS), stored_summary(params, VARIANTS)
    text = results_markdown(params, metrics["train"], metrics["parzen"], metrics["toy"], seeds, variants)
    write_text(RESULTS, text)
    # its params in dvc.yaml: the configuration, not where the data came from or how Parzen ran
    unlisted = {"data.mirror", "parzen.chunk_size", "parzen.device"}
    read = {k: v for k, v in params.flat("data", "model", "train", "select", "sample", "parzen").items() if k not in unlisted}
    tracking.record_stage("report", read, artifacts=[RESULTS])


if __name__ == "__main__":
    run_stage("report", main)
