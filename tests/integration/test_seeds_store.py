import copy
import json
import statistics

import pytest

from advnets.params import validate
from advnets.provenance import tracking
from advnets.provenance.runs import seed_summary, summarise, variants_markdown, variants_summary
from advnets.report.results import best_of_the_paper
from advnets.report.summaries import config_filter
from conftest import override
from fakes import log_training


def test_the_newest_scored_run_of_each_seed_of_this_configuration(workdir, raw_params):
    seed = {s: validate(override(raw_params, {"train": {"seed": s}})) for s in (0, 1, 2)}
    old_seed0 = log_training(seed[0], 100.0)
    seed0 = log_training(seed[0], 200.0, DVC_EXP_NAME="exp-a")
    seed1 = log_training(seed[1], 210.0)
    log_training(seed[1], 999.0, status="KILLED")
    log_training(seed[2], None)  # not scored yet
    other = validate(override(raw_params, {"train": {"seed": 2, "lr": 0.05}}))
    log_training(other, 999.0)  # another configuration

    summary, notes = seed_summary(seed[0], tracking.tracking_uri(workdir))
    assert notes == [] and summary["not_in_store"] == []
    assert [(row["seed"], row["run_id"]) for row in summary["seeds"]] == [(0, seed0), (1, seed1)]
    assert old_seed0 not in {row["run_id"] for row in summary["seeds"]}
    assert summary["seeds"][0]["dvc_experiment"] == "exp-a"
    assert summary["test_ll_mean"] == pytest.approx(205.0)
    assert summary["test_ll_sd"] == pytest.approx(statistics.stdev([200.0, 210.0]))
    assert summary["config"]["train.lr"] == "0.1" and "train.seed" not in summary["config"]


def test_variants_group_runs_by_their_changes_from_the_configuration(workdir, raw_params):
    def config(**train):
        return validate(override(copy.deepcopy(raw_params), {"train": train}))

    base = {s: config(seed=s) for s in (0, 1)}
    log_training(base[0], 180.0, curve={45: 1.0, 50: 140.0, 100: 160.0, 250: 185.0}, seconds=[1800.0, 3600.0],
                 d_fake=[0.3, 0.43], device="cpu")
    log_training(base[1], 184.0, curve={50: 150.0, 100: 170.0}, seconds=[720.0], **{"device.name": "NVIDIA H200"})
    # D won seed 0 of the alternating rule: it rejects nearly every fake at the last epoch
    for seed, score, d_fake in ((0, 190.0, [0.045, 0.0009]), (1, 196.0, [0.009, 0.2])):
        log_training(config(seed=seed, update="alternating"), score, d_fake=d_fake)
    log_training(config(seed=0, d_loss_scale=1.0, epochs=300), 170.0, curve={50: 120.0})
    log_training(config(seed=0, epochs=1000), 188.0)

    summary, _ = variants_summary(base[0], tracking.tracking_uri(workdir))
    table = summary["variants"]

    assert summary["config"] == config_filter(base[0])
    assert [row["changes"] for row in table] == [
        {},
        {"train.update": "alternating"},
        {"train.epochs": "1000"},
        {"train.d_loss_scale": "1.0", "train.epochs": "300"},
    ]
    assert [(row["n_seeds"], row["test_ll_mean"]) for row in table] == [(2, 182.0), (2, 193.0), (1, 188.0), (1, 170.0)]
    # the paper leaves the length open, not the update rule: the longer run is its best figure
    assert best_of_the_paper(table)["changes"] == {"train.epochs": "1000"}
    assert best_of_the_paper(table[:2])["changes"] == {}
    assert best_of_the_paper(table[1:2]) is None
    text = variants_markdown(table)
    # validation at CURVE_EPOCHS: the mean over the seeds that reached each
    assert table[0]["valid_ll_at"] == {"50": 145.0, "100": 165.0, "250": 185.0}
    assert table[0]["seeds"][0]["valid_curve"] == [[45, 1.0], [50, 140.0], [100, 160.0], [250, 185.0]]  # every epoch scored
    # training time: the epochs' seconds summed, on the machine the run names (else its device)
    assert [(seed["train_hours"], seed["machine"]) for seed in table[0]["seeds"]] == [(1.5, "cpu"), (0.2, "NVIDIA H200")]
    # D won: counted over the seeds that logged D(G(z)), "of N" when some did not
    assert [seed["d_fake_last"] for seed in table[1]["seeds"]] == [0.0009, 0.2]
    assert "| none (the paper's configuration) | 2 | 182.0 | 2.8 | last, last | 0 of 1 logged | 145.0 | 165.0 | 185.0 | – | – | – | 1.5 (cpu), 0.2 (NVIDIA H200) |" in text
    assert "| `train.update=alternating` | 2 | 193.0 | 4.2 | last, last | 1 | – | – | – | – | – | – | –, – (?) |" in text  # no times logged
    assert "| `train.d_loss_scale=1.0`, `train.epochs=300` | 1 | 170.0 | – | last | – | 120.0 | – | – | – | – |" in text


def test_a_rewrite_keeps_the_earlier_seeds_the_store_has_no_run_of(workdir, raw_params):
    seed = {s: validate(override(raw_params, {"train": {"seed": s}})) for s in (0, 2)}
    new0 = log_training(seed[0], 200.0)
    new2 = log_training(seed[2], 210.0)
    earlier = {"config": config_filter(seed[0]), **summarise([
        {"seed": 0, "test_ll_mean": 100.0, "run_id": "lost0"},  # the store has a newer run of seed 0
        {"seed": 1, "test_ll_mean": 230.0, "run_id": "lost1"},  # and none of seed 1
    ])}
    uri = tracking.tracking_uri(workdir)

    summary, notes = seed_summary(seed[0], uri, earlier)
    assert [(row["seed"], row["run_id"]) for row in summary["seeds"]] == [(0, new0), (1, "lost1"), (2, new2)]
    assert summary["not_in_store"] == ["lost1"]
    assert summary["test_ll_mean"] == pytest.approx(213.3333333)
    assert notes == [f"seed 0: run {new0} of the store replaces run lost0"]

    # an earlier summary of another configuration is not carried over, and that is said
    other = validate(override(copy.deepcopy(raw_params), {"train": {"lr": 0.05}}))
    summary, notes = seed_summary(seed[0], uri, {**earlier, "config": config_filter(other)})
    assert [row["run_id"] for row in summary["seeds"]] == [new0, new2] and summary["not_in_store"] == []
    assert notes == ["the earlier summary was of another configuration (it differs in train.lr): its 2 seed(s) "
                     "are not carried over"]


def test_a_rewritten_variants_table_keeps_what_the_store_lacks(workdir, raw_params):
    def config(**train):
        return validate(override(copy.deepcopy(raw_params), {"train": train}))

    new0 = log_training(config(seed=0), 180.0)
    alternating = log_training(config(seed=0, update="alternating"), 150.0)
    earlier = {
        "config": config_filter(config()),
        "variants": [
            {"changes": {}, **summarise([{"seed": 0, "test_ll_mean": 170.0, "run_id": "old0"},
                                         {"seed": 1, "test_ll_mean": 190.0, "run_id": "old1"}])},
            {"changes": {"train.epochs": "1000"}, **summarise([{"seed": 0, "test_ll_mean": 214.0, "run_id": "long"}])},
        ],
    }

    summary, notes = variants_summary(config(), tracking.tracking_uri(workdir), earlier)
    table = summary["variants"]
    assert [row["changes"] for row in table] == [{}, {"train.epochs": "1000"}, {"train.update": "alternating"}]
    assert [[seed["run_id"] for seed in row["seeds"]] for row in table] == [[new0, "old1"], ["long"], [alternating]]
    assert [row["test_ll_mean"] for row in table] == [185.0, 214.0, 150.0]  # recomputed with the kept seeds
    assert summary["not_in_store"] == ["old1", "long"]
    assert notes == [f"params.yaml's configuration, seed 0: run {new0} of the store replaces run old0"]


def test_an_earlier_table_of_another_configuration_is_compared_afresh(workdir, raw_params):
    """params.yaml changed since the table was written: its rows keep their runs, as changes from
    the new params.yaml, as the store's runs are."""
    def config(**train):
        return validate(override(copy.deepcopy(raw_params), {"train": train}))

    longer = config(epochs=1000)  # params.yaml now asks for 1000 epochs
    new = log_training(config(seed=0, epochs=1000), 214.0)
    earlier = {
        "config": config_filter(config()),  # written when params.yaml had 250
        "variants": [
            {"changes": {}, **summarise([{"seed": 1, "test_ll_mean": 182.0, "run_id": "s1"}])},
            {"changes": {"train.epochs": "1000"}, **summarise([{"seed": 1, "test_ll_mean": 212.0, "run_id": "l1"}])},
            {"changes": {"select.every": "absent"}, **summarise([{"seed": 0, "test_ll_mean": 160.0, "run_id": "old"}])},
        ],
    }

    summary, _ = variants_summary(longer, tracking.tracking_uri(workdir), earlier)
    rows = {json.dumps(row["changes"]): [seed["run_id"] for seed in row["seeds"]] for row in summary["variants"]}
    assert rows == {
        "{}": [new, "l1"],
        json.dumps({"train.epochs": "250"}): ["s1"],
        json.dumps({"select.every": "absent", "train.epochs": "250"}): ["old"],
    }
