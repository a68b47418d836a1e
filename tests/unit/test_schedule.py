import pytest
import torch

from advnets.gan.schedule import ClassicalMomentumSGD, OptimizerStateError, learning_rate, learning_rate_spent, momentum
from advnets.params import ParamsError, validate
from conftest import override


def test_learning_rate_decays_every_step_to_a_floor(raw_params):
    train = validate(raw_params).train
    assert learning_rate(train, 0) == 0.1
    assert learning_rate(train, 500) == pytest.approx(0.1 / 1.000004**500, rel=1e-12)
    assert learning_rate(train, 250 * 500) == pytest.approx(0.0607, abs=1e-4)  # the spec's table
    assert learning_rate(train, 10**9) == 1e-6


def test_learning_rate_spent_is_the_share_of_the_rates_whole_sum(raw_params):
    raw_params["train"].update(lr_decay=1.01, lr_min=0.0)
    fast = validate(raw_params).train
    rates = [learning_rate(fast, t) for t in range(5000)]  # 1.01^-5000 < 1e-21: the whole sum
    for steps in (0, 1, 70, 300):
        assert learning_rate_spent(fast, steps) == pytest.approx(sum(rates[:steps]) / sum(rates), abs=1e-12)
    paper = validate(override(raw_params, {"train": {"lr_decay": 1.000004}})).train
    assert learning_rate_spent(paper, 250 * 500) == pytest.approx(0.3935, abs=1e-4)  # 1 - e^-0.5
    assert learning_rate_spent(paper, 2000 * 500) == pytest.approx(0.9817, abs=1e-4)  # 1 - e^-4
    assert learning_rate_spent(validate(override(raw_params, {"train": {"lr_decay": 1.0}})).train, 10**6) == 0.0


@pytest.mark.parametrize("epochs, expected", [(0, 0.5), (1, 0.5 + 0.2 / 249), (249, 0.7), (300, 0.7)])
def test_momentum_ramps_from_half_to_seven_tenths(raw_params, epochs, expected):
    assert momentum(validate(raw_params).train, epochs) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_sgd_is_classical_momentum_under_a_decaying_rate_down_to_its_floor(raw_params, dtype, atol):
    # a fast decay makes any slip visible; the floor is reached at step 4
    raw_params["train"].update(lr_decay=1.5, lr_min=0.02, momentum_ramp_epochs=3)
    train = validate(raw_params).train
    assert learning_rate(train, 3) > 0.02 == learning_rate(train, 4)
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(5, dtype=dtype))
    optimizer = ClassicalMomentumSGD([param], train)
    weights, increment = param.detach().double(), torch.zeros(5, dtype=torch.float64)
    for step in range(8):
        epoch = step // 2
        grad = torch.randn(5, dtype=dtype)
        param.grad = grad.clone()
        optimizer.step_with_schedule(epoch)
        increment = momentum(train, epoch) * increment - learning_rate(train, step) * grad.double()
        weights += increment
        assert torch.allclose(param.detach().double(), weights, rtol=0, atol=atol)


@pytest.mark.parametrize("key", ["momentum_start", "momentum_end"])
def test_zero_momentum_is_refused(raw_params, key):
    raw_params["train"][key] = 0.0
    with pytest.raises(ParamsError, match=f"train.{key}: input should be greater than 0"):
        validate(raw_params)


def one_step_optimizer(raw_params) -> ClassicalMomentumSGD:
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = ClassicalMomentumSGD([param], validate(raw_params).train)
    param.grad = torch.ones(2)
    optimizer.step_with_schedule(0)
    return optimizer


def test_optimizer_state_round_trips_the_step_count(raw_params):
    optimizer = one_step_optimizer(raw_params)
    restored = ClassicalMomentumSGD(optimizer.param_groups[0]["params"], optimizer.train_params)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.steps_done == 1


def test_state_from_the_earlier_unscaled_momentum_is_refused(raw_params):
    optimizer = one_step_optimizer(raw_params)
    earlier = optimizer.state_dict()
    del earlier["form"]
    restored = ClassicalMomentumSGD(optimizer.param_groups[0]["params"], optimizer.train_params)
    with pytest.raises(OptimizerStateError, match="remove the checkpoint"):
        restored.load_state_dict(earlier)
