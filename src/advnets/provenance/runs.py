"""Results across runs, from the MLflow store: the Parzen result of every seed of one
configuration (each seed a `dvc exp run -S train.seed=N`, or a `dvc repro` per seed) with the mean
and standard deviation across seeds, and the same for every variant of it (an ablation)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import mlflow

from advnets.errors import AdvnetsError
from advnets.params import Params
from advnets.provenance import tracking
from advnets.provenance.publish import run_lineage_record
from advnets.report.results import CURVE_EPOCHS, variants_table
from advnets.report.summaries import config_filter

SCORE = "parzen.test_ll_mean"
VALIDATION = "select.valid_ll"
EPOCH_SECONDS = "seconds"  # the train stage's per-epoch metric: the epoch's steps
D_FAKE = "d_fake"  # the train stage's per-epoch metric: mean D(G(z)) over the epoch's steps


def scored_runs(params: Params, uri: str) -> list[mlflow.entities.Run]:
    """Finished training runs with a Parzen score in the params' experiment, newest first."""
    client = tracking.client(uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        return []
    runs = [
        run
        for training in tracking.TRAINING_RUN_FILTERS
        for run in client.search_runs(
            [experiment.experiment_id], f"{training} and attributes.status = 'FINISHED'", max_results=5000
        )
    ]
    return sorted((run for run in runs if SCORE in run.data.metrics), key=lambda run: run.info.start_time, reverse=True)


def changes(run: mlflow.entities.Run, wanted: dict[str, str]) -> dict[str, str]:
    """The run's param values that differ from the configuration's ("absent" if not logged)."""
    return config_changes(run.data.params, wanted)


def config_changes(logged: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    return {key: logged.get(key, "absent") for key, value in sorted(wanted.items()) if logged.get(key) != value}


def newest_per_seed(runs: list[mlflow.entities.Run]) -> list[mlflow.entities.Run]:
    """Of runs newest first, the newest of each seed, by seed."""
    newest: dict[str, mlflow.entities.Run] = {}
    for run in runs:
        newest.setdefault(run.data.params["train.seed"], run)
    return sorted(newest.values(), key=lambda run: int(run.data.params["train.seed"]))


def seed_runs(params: Params, uri: str) -> list[mlflow.entities.Run]:
    """The newest finished, scored training run of each seed whose params match the config."""
    wanted = config_filter(params)
    return newest_per_seed([run for run in scored_runs(params, uri) if not changes(run, wanted)])


def variants_summary(
    params: Params, uri: str, earlier: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """`variants` with the configuration they were compared against (for `stored_summary`), and
    what became of the earlier table's seeds, in words. earlier: the table written before
    (`earlier_summary`), its rows compared with params.yaml afresh (it may have changed since);
    each of its seeds that the store has no run of, in the same variant, is kept, and its run id
    listed in `not_in_store`."""
    wanted = config_filter(params)
    table, kept, notes = variants(params, uri), [], []
    if earlier:
        rows = {_variant_key(row["changes"]): row for row in table}
        for old in earlier["variants"]:
            diff = config_changes({**earlier["config"], **old["changes"]}, wanted)
            row = rows.get(_variant_key(diff))
            seeds, ids, replaced = with_earlier_seeds(row["seeds"] if row else [], old["seeds"])
            notes += [f"{_named(diff)}, {note}" for note in replaced]
            if ids:
                rows[_variant_key(diff)] = {"changes": diff, **summarise(seeds)}
                kept += ids
        table = _in_table_order(rows.values())
    return {"config": wanted, "variants": table, "not_in_store": kept}, notes


def variants(params: Params, uri: str) -> list[dict[str, Any]]:
    """Every configuration in the store, as its changes from params.yaml, with its seeds' results;
    params.yaml's own configuration first (no changes), then by mean score."""
    wanted = config_filter(params)
    groups: dict[str, tuple[dict[str, str], list[mlflow.entities.Run]]] = {}
    for run in scored_runs(params, uri):
        diff = changes(run, wanted)
        groups.setdefault(_variant_key(diff), (diff, []))[1].append(run)
    client = tracking.client(uri)
    return _in_table_order(
        {"changes": diff, **summarise([seed_row(r, client) for r in newest_per_seed(runs)])}
        for diff, runs in groups.values()
    )


def _in_table_order(rows) -> list[dict[str, Any]]:
    """params.yaml's own configuration first (no changes), then by mean score."""
    return sorted(rows, key=lambda row: (bool(row["changes"]), -row["test_ll_mean"]))


def _variant_key(changes: dict[str, str]) -> str:
    return json.dumps(changes, sort_keys=True)


def _named(diff: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in diff.items()) or "params.yaml's configuration"


def with_earlier_seeds(
    found: list[dict[str, Any]], earlier: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The store's seed rows, plus an earlier summary's rows of the seeds the store has no run of
    (runs made in a store since lost, or in another one): rewriting a summary from a new store adds
    to it and forgets nothing. A seed the store has a run of is the store's. Returns the rows by
    seed, the run ids of the kept ones, and in words each earlier run the store's replaced."""
    have = {row["seed"]: row for row in found}
    kept = [row for row in earlier if row["seed"] not in have]
    replaced = [
        f"seed {row['seed']}: run {have[row['seed']]['run_id']} of the store replaces run {row.get('run_id')}"
        for row in earlier
        if row["seed"] in have and have[row["seed"]]["run_id"] != row.get("run_id")
    ]
    return sorted(found + kept, key=lambda row: row["seed"]), [row.get("run_id") for row in kept], replaced


def variants_markdown(table: list[dict[str, Any]]) -> str:
    return "\n".join(
        [
            "# Variants: Parzen test log-likelihood by configuration",
            "",
            "Written by `advnets variants` from the MLflow store and, unless `--replace`, the table before it "
            "(its seeds that the store lacks: `not_in_store` in variants.json); changes are relative to params.yaml.",
            "",
            *variants_table(table),
        ]
    ) + "\n"


def seed_row(run: mlflow.entities.Run, client: mlflow.MlflowClient) -> dict[str, Any]:
    record = run_lineage_record(run)
    curve = dict(sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, VALIDATION)))
    seconds = [m.value for m in client.get_metric_history(run.info.run_id, EPOCH_SECONDS)]
    tags = run.data.tags
    return {
        "seed": int(run.data.params["train.seed"]),
        "test_ll_mean": record["parzen"]["test_ll_mean"],
        "test_ll_se": record["parzen"].get("test_ll_se"),
        **{key: record[key] for key in ("selected_epoch", "run_id", "dvc_experiment", "git_commit", "generator_md5")},
        "valid_ll_at": {str(epoch): curve[epoch] for epoch in CURVE_EPOCHS if epoch in curve},
        "valid_curve": [[epoch, value] for epoch, value in curve.items()],  # every scored epoch
        # the epochs' steps, summed (not the monitor, the selection's scoring or the checkpoints)
        "train_hours": sum(seconds) / 3600 if seconds else None,
        "machine": ", then ".join(tracking.machines(tags)) or None,  # in order, where a resume changed it
        "d_fake_last": run.data.metrics.get(D_FAKE),  # the run's latest value: its last epoch's
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (n - 1) of the seeds' test log-likelihoods, and the mean
    validation score at each of CURVE_EPOCHS that some seed reached."""
    scores = [row["test_ll_mean"] for row in rows]
    at = {epoch: [row["valid_ll_at"][epoch] for row in rows if epoch in row.get("valid_ll_at", {})] for epoch in map(str, CURVE_EPOCHS)}
    return {
        "n_seeds": len(rows),
        "test_ll_mean": statistics.fmean(scores) if scores else None,
        "test_ll_sd": statistics.stdev(scores) if len(scores) > 1 else None,
        "valid_ll_at": {epoch: statistics.fmean(values) for epoch, values in at.items() if values},
        "seeds": rows,
    }


def seed_summary(params: Params, uri: str, earlier: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Every seed of params.yaml's configuration in the store, their mean and sd, and what became
    of the earlier summary's seeds, in words. earlier: the summary written before
    (`earlier_summary`); if it is of this configuration, its seeds the store has no run of are
    kept, and their run ids listed in `not_in_store`."""
    wanted = config_filter(params)
    client = tracking.client(uri)
    found = [seed_row(run, client) for run in seed_runs(params, uri)]
    notes = []
    if earlier and earlier["config"] != wanted:
        differ = sorted(key for key in {*wanted, *earlier["config"]} if wanted.get(key) != earlier["config"].get(key))
        notes.append(f"the earlier summary was of another configuration (it differs in {', '.join(differ)}): its "
                     f"{len(earlier['seeds'])} seed(s) are not carried over")
        earlier = None
    rows, kept, replaced = with_earlier_seeds(found, earlier["seeds"] if earlier else [])
    return {"config": wanted, **summarise(rows), "not_in_store": kept}, notes + replaced


def earlier_summary(path: Path, key: str) -> dict[str, Any] | None:
    """The summary already at path (`advnets seeds` or `variants`, with the list `key`) that a
    rewrite adds to; None if there is no file."""
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AdvnetsError(f"{path} is not JSON ({error}): mend it, or overwrite it with --replace") from None
    if not (isinstance(summary, dict) and isinstance(summary.get("config"), dict) and isinstance(summary.get(key), list)):
        raise AdvnetsError(f"{path} is not a summary with '{key}' (another command's file?): name another --out, "
                           "or overwrite it with --replace")
    return summary
