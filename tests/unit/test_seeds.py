import copy
import json

import pytest

from advnets.errors import AdvnetsError
from advnets.params import validate
from advnets.provenance.runs import earlier_summary, summarise
from advnets.report.summaries import config_filter, stored_summary
from conftest import override


def test_mean_and_sd_across_seeds():
    rows = [{"seed": s, "test_ll_mean": v} for s, v in [(0, 220.0), (1, 226.0), (2, 229.0)]]
    summary = summarise(rows)
    assert summary["n_seeds"] == 3
    assert summary["test_ll_mean"] == pytest.approx(225.0)
    assert summary["test_ll_sd"] == pytest.approx(4.58257569, rel=1e-8)  # sqrt(((-5)^2 + 1 + 4^2) / 2)
    assert summarise(rows[:1])["test_ll_sd"] is None
    assert summarise([])["test_ll_mean"] is None


def test_a_stored_summary_is_used_only_for_its_own_configuration(tmp_path, raw_params):
    params = validate(copy.deepcopy(raw_params))
    path = tmp_path / "seeds.json"
    assert stored_summary(params, path) is None  # none written yet
    rows = [{"seed": s, "test_ll_mean": v} for s, v in [(0, 220.0), (1, 226.0)]]
    path.write_text(json.dumps({"config": config_filter(params), **summarise(rows)}))
    assert stored_summary(params, path)["test_ll_mean"] == pytest.approx(223.0)
    other_seed = validate(override(copy.deepcopy(raw_params), {"train": {"seed": 5}}))
    assert stored_summary(other_seed, path) is not None  # the seed is not part of the configuration
    other_lr = validate(override(copy.deepcopy(raw_params), {"train": {"lr": 0.05}}))
    assert stored_summary(other_lr, path) is None


def test_a_stored_variants_table_is_used_only_for_its_own_configuration(tmp_path, raw_params):
    params = validate(copy.deepcopy(raw_params))
    path = tmp_path / "variants.json"
    row = {"changes": {}, **summarise([{"seed": 0, "test_ll_mean": 200.0}])}
    path.write_text(json.dumps([row]))  # the earlier form, a bare list, says nothing of its configuration
    assert stored_summary(params, path) is None
    path.write_text(json.dumps({"config": config_filter(params), "variants": [row]}))
    assert stored_summary(params, path)["variants"] == [row]
    other_lr = validate(override(copy.deepcopy(raw_params), {"train": {"lr": 0.05}}))
    assert stored_summary(other_lr, path) is None


def test_an_earlier_summary_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "seeds.json"
    assert earlier_summary(path, "seeds") is None
    path.write_text("<<<<<<< HEAD\n")
    with pytest.raises(AdvnetsError, match="is not JSON .*--replace"):
        earlier_summary(path, "seeds")
    path.write_text(json.dumps({"config": {}, "variants": []}))
    with pytest.raises(AdvnetsError, match="is not a summary with 'seeds'"):
        earlier_summary(path, "seeds")
    assert earlier_summary(path, "variants") == {"config": {}, "variants": []}
