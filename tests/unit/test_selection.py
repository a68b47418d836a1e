
import pytest
import torch

from advnets.eval.selection import Selector
from advnets.gan.nets import sample_noise
from advnets.gan.updates import Nets
from advnets.params import ParamsError, validate
from advnets.pipeline.train import TrainOutputs
from conftest import TINY, override

OUT = TrainOutputs()


def small_generator(params):
    torch.manual_seed(0)
    return Nets.create(params.model, params.train, 784).generator


def test_noise_is_fixed_per_seed_and_apart_from_the_training_stream(tiny_params, raw_params):
    valid = torch.rand(2000, 784)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = Selector(tiny_params, valid, torch.device("cpu"))
    assert torch.equal(torch.rand(3), before)  # the global stream is untouched
    assert torch.equal(first.z, Selector(tiny_params, valid, torch.device("cpu")).z)
    other_seed = validate(override(raw_params, {**TINY, "train": {"seed": 1}}))
    assert not torch.equal(first.z, Selector(other_seed, valid, torch.device("cpu")).z)
    assert first.z.shape == (tiny_params.select.samples, tiny_params.model.noise_dim)
    monitor_z = sample_noise(10, tiny_params.model, generator=torch.Generator().manual_seed(0))  # the monitor's
    assert not torch.equal(first.z[:10], monitor_z)


def test_the_best_epoch_is_kept_as_a_copy(tiny_params):
    selector = Selector(tiny_params, torch.rand(2000, 784), torch.device("cpu"))
    generator = small_generator(tiny_params)
    nets = {"generator": generator}
    assert selector.consider(1, {"valid_ll": 10.0, "valid_ll_se": 1.0, "sigma": 0.2}, nets)
    kept = selector.best["generator"]["0.weight"].clone()
    with torch.no_grad():
        generator[0].weight.add_(1.0)
    assert not selector.consider(2, {"valid_ll": 9.0, "valid_ll_se": 1.0, "sigma": 0.2}, nets)
    assert torch.equal(selector.best["generator"]["0.weight"], kept)
    assert selector.consider(3, {"valid_ll": 11.0, "valid_ll_se": 1.0, "sigma": 0.2}, nets)
    assert selector.summary()["selected_epoch"] == 3


def test_selection_may_not_use_the_images_that_choose_sigma_beyond_the_split(raw_params):
    with pytest.raises(ParamsError, match=r"parzen.valid_points \+ select.valid_points must be <= data.valid_size"):
        validate(override(raw_params, {"select": {"valid_points": 9500}}))
