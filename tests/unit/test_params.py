import pytest

from advnets.params import ParamsError, load_params, validate
from conftest import REPO


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert (params.data.train_size, params.data.valid_size) == (50_000, 10_000)


def test_unknown_key_is_refused_by_full_name(raw_params):
    raw_params["data"]["valid_szie"] = 10
    with pytest.raises(ParamsError, match=r"data\.valid_szie: unknown key"):
        validate(raw_params)


def test_unknown_section_is_refused(raw_params):
    raw_params["dataa"] = {}
    with pytest.raises(ParamsError, match=r"dataa: unknown key"):
        validate(raw_params)


def test_wrong_type_is_refused(raw_params):
    raw_params["data"]["train_size"] = "50000"
    with pytest.raises(ParamsError, match=r"data\.train_size: .*integer.*got '50000'"):
        validate(raw_params)


def test_out_of_range_value_is_refused_with_the_value(raw_params):
    raw_params["data"]["valid_size"] = -5
    with pytest.raises(ParamsError, match=r"data\.valid_size: .*greater than 0, got -5"):
        validate(raw_params)


def test_splits_larger_than_mnist_are_refused(raw_params):
    raw_params["data"]["train_size"] = 55_000
    with pytest.raises(ParamsError, match=r"data: train_size \+ valid_size must be <= 60000"):
        validate(raw_params)


def test_missing_key_is_refused(raw_params):
    del raw_params["data"]["mirror"]
    with pytest.raises(ParamsError, match=r"data\.mirror: missing"):
        validate(raw_params)


def test_every_problem_is_reported_at_once(raw_params):
    raw_params["data"]["valid_size"] = 0
    raw_params["data"]["extra"] = 1
    with pytest.raises(ParamsError) as info:
        validate(raw_params)
    assert "data.valid_size" in str(info.value) and "data.extra" in str(info.value)


def test_unreadable_file_is_refused(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")


def test_alternating_needs_k_batches_per_epoch(raw_params):
    raw_params["train"].update(update="alternating", k=5, batches_per_epoch=3)
    with pytest.raises(ParamsError, match=r"at least train\.k = 5 batches"):
        validate(raw_params)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("train", "lr", float("inf"), r"train\.lr: input should be a finite number, got inf"),
    ("train", "monitor_sigma", float("nan"), r"train\.monitor_sigma: input should be a finite number, got nan"),
    ("train", "lr_min", 0.5, r"train\.lr_min: must be <= lr \(the floor of the decay\), got 0\.5 > 0\.1"),
    ("parzen", "test_points", 20_000, r"parzen\.test_points: input should be less than or equal to 10000, got 20000"),
])
def test_values_that_would_fail_only_after_compute_are_refused_before_it(raw_params, section, key, value, message):
    raw_params[section][key] = value
    with pytest.raises(ParamsError, match=message):
        validate(raw_params)


def test_a_key_given_twice_is_refused_not_silently_the_last(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  lr: 0.1\n", "  lr: 0.1\n  lr: 0.01\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"key 'lr' appears twice in one mapping \(first at line \d+\)"):
        load_params(tmp_path / "params.yaml")


def leaves(tree: dict, prefix: str = ""):
    """(dotted key, value) of every leaf of params.yaml (a list is one leaf)."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def bad_inputs(raw: dict) -> list[tuple[str, str, object]]:
    """For every key of the file: removed, given a mapping, given a sibling that does not exist; and
    for every number, infinity and NaN. (key, what, value); value None means "removed"."""
    cases = []
    for key, value in leaves(raw):
        cases += [(key, "removed", None), (key, "a mapping", {"x": 1}), (key + "_typo", "unknown", 1)]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cases += [(key, "infinite", float("inf")), (key, "NaN", float("nan"))]
    return cases


def test_every_key_refuses_every_bad_input_naming_itself(raw_params):
    """A generated matrix of bad inputs over the whole file (a number the loader would take for a
    string, or a key misspelt, in any section): each is refused on load, before any compute,
    with the key named."""
    import copy
    import re

    cases = bad_inputs(raw_params)
    assert len(cases) > 300  # every section: MNIST's, the toy's, CIFAR-10's and TFD's
    missed = []
    for key, what, value in cases:
        raw = copy.deepcopy(raw_params)
        *sections, leaf = key.split(".")
        node = raw
        for section in sections:
            node = node[section]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
        try:
            validate(raw)
        except ParamsError as refused:
            named = re.findall(r"^\s+(\S+): ", str(refused), flags=re.MULTILINE)
            if not named or any(name != key and not name.startswith(key + ".") for name in named):
                missed.append(f"{key} {what}: refused without naming it: {refused}")
        else:
            missed.append(f"{key} {what}: accepted")
    assert not missed, "\n".join(missed)
