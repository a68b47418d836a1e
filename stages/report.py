"""DVC stage `report`: metrics/results.md from the metrics files."""

import json

from advnets.atomic import write_text
from advnets.params import load_params
from advnets.report import results_markdown
from advnets.stage import run_stage


def main() -> None:
    metrics = {name: json.loads(open(f"metrics/{name}.json").read()) for name in ("train", "parzen", "toy")}
    write_text("metrics/results.md", results_markdown(load_params(), metrics["train"], metrics["parzen"], metrics["toy"]))


if __name__ == "__main__":
    run_stage("report", main)
