"""The summaries `advnets seeds` and `advnets variants` write (metrics/seeds.json, variants.json),
read back for the report: a summary counts only if it is of params.yaml's configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advnets.params import NEUTRAL_KEYS, Params, param_strings

NOT_CONFIG = {"train.seed", *NEUTRAL_KEYS}  # a configuration's seeds differ only in these


def config_filter(params: Params) -> dict[str, str]:
    """The logged param values a run of this configuration has (any seed)."""
    flat = params.flat("data", "model", "train", "select", "sample", "parzen")
    return {k: v for k, v in param_strings(flat).items() if k not in NOT_CONFIG}


def stored_summary(params: Params, path: Path) -> dict[str, Any] | None:
    """The summary `advnets seeds` or `advnets variants` wrote to path, if there is one and it is
    of this configuration and not empty."""
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    of_this = isinstance(summary, dict) and summary.get("config") == config_filter(params)
    return summary if of_this and (summary.get("n_seeds") or summary.get("variants")) else None
