import csv
import json

import pytest
import torch

from advnets.eval.selection import Selector
from advnets.gan.updates import Nets
from advnets.params import validate
from advnets.parzen import PixelRangeError, evaluate
from advnets.pipeline.train import TrainOutputs, run_training
from conftest import TINY, override
from fakes import Interrupt, interrupt_after

OUT = TrainOutputs()


def small_generator(params):
    torch.manual_seed(0)
    return Nets.create(params.model, params.train, 784).generator


def test_score_is_the_protocol_on_validation_images_apart_from_those_choosing_sigma(tiny_params, mnist_root):
    valid = torch.load(mnist_root / "mnist" / "valid.pt", weights_only=True)["images"].float().div(255)
    n_sigma, n_score = tiny_params.parzen.valid_points, tiny_params.select.valid_points
    poisoned = valid.clone()
    poisoned[n_sigma + n_score :] = 2.0  # out of [0, 1]: scoring any of these would raise
    selector = Selector(tiny_params, poisoned, torch.device("cpu"))
    generator = small_generator(tiny_params)

    score = selector.score(generator)

    expected = evaluate(generator(selector.z), valid[:n_sigma], valid[n_sigma : n_sigma + n_score], tiny_params.parzen.sigmas)
    assert score["sigma"] == expected.sigma
    assert score["valid_ll"] == pytest.approx(expected.test_ll_mean, abs=1e-6)
    poisoned[n_sigma] = 2.0
    with pytest.raises(PixelRangeError):  # the first scored image is in use
        Selector(tiny_params, poisoned, torch.device("cpu")).score(generator)


def test_training_keeps_the_epoch_that_scores_best_on_validation(workdir, raw_params):
    params = validate(override(raw_params, {**TINY, "train": {**TINY["train"], "epochs": 4}, "select": {**TINY["select"], "every": 2}}))
    generators = {}

    def remember(trainer):
        generators[trainer.epoch] = {k: v.clone() for k, v in trainer.nets.generator.state_dict().items()}

    run_training(params, on_epoch_end=remember)

    with open(OUT.selection) as f:
        scores = {int(row["epoch"]): float(row["valid_ll"]) for row in csv.DictReader(f)}
    assert list(scores) == [2, 4]
    best = max(scores, key=scores.get)
    summary = json.loads(OUT.summary.read_text())
    assert summary["selected_epoch"] == best and summary["selected_valid_ll"] == pytest.approx(scores[best])
    saved = torch.load(OUT.generator, weights_only=True)
    assert all(torch.equal(saved[k], generators[best][k]) for k in saved)


def test_an_interrupted_run_ended_early_still_scores_its_last_epoch(workdir, raw_params):
    params = validate(override(raw_params, {**TINY, "train": {**TINY["train"], "epochs": 3}, "select": {**TINY["select"], "every": 2}}))
    with pytest.raises(Interrupt):
        run_training(params, on_epoch_end=interrupt_after(1))  # epoch 1 is not a scoring epoch
    shorter = validate(override(raw_params, {"train": {"epochs": 1}}))
    run_training(shorter)
    assert json.loads(OUT.summary.read_text())["selected_epoch"] == 1
    assert OUT.generator.is_file()
