import pytest
import torch

from advnets.gan.trainer import NonFiniteError, Trainer
from advnets.params import validate
from conftest import TINY, override


def make_trainer(params, n_train=200) -> Trainer:
    images = torch.rand(n_train, 784, generator=torch.Generator().manual_seed(0))
    return Trainer(params, images, images[:50], torch.device("cpu"))


def test_alternating_trainer_counts_k_d_steps_per_g_step(raw_params):
    changes = {**TINY, "train": {**TINY["train"], "update": "alternating", "k": 2}}
    trainer = make_trainer(validate(override(raw_params, changes)))
    trainer.train_epoch()
    assert (trainer.nets.opt_d.steps_done, trainer.nets.opt_g.steps_done) == (4, 2)


def test_epoch_row_reports_the_schedules_and_figures(tiny_params):
    trainer = make_trainer(tiny_params)
    row = trainer.train_epoch()
    assert row["epoch"] == 1 and trainer.nets.opt_d.steps_done == 4
    assert row["lr"] == pytest.approx(0.1 / 1.000004**3)
    assert row["momentum"] == 0.5
    assert 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1
    assert row["images_per_s"] > 0 and row["valid_parzen"] < 0


def test_same_seed_gives_bit_identical_weights_on_cpu(tiny_params):
    first, second = make_trainer(tiny_params), make_trainer(tiny_params)
    first.train_epoch()
    second.train_epoch()
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_nan_in_a_weight_stops_training_naming_epoch_and_step(tiny_params):
    trainer = make_trainer(tiny_params)
    trainer.train_epoch()
    with torch.no_grad():
        next(trainer.nets.generator.parameters())[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"step 1 of epoch 2 \(global step 5\)"):
        trainer.train_epoch()
