
import pytest

from advnets.data.mnist import load_mnist
from advnets.parzen import evaluate, log_likelihood
from fakes import brute_force


@pytest.mark.parametrize("sigma", [0.1, 0.2154, 1.0])
def test_matches_float64_brute_force_on_mnist_within_a_hundredth_of_a_nat(mnist_root, sigma):
    samples = load_mnist("train", mnist_root)[0][:3000]
    points = load_mnist("valid", mnist_root)[0][:200]
    error = (log_likelihood(points, samples, sigma) - brute_force(points, samples, sigma)).abs().max()
    assert error < 0.01


def test_sigma_is_the_argmax_of_the_validation_mean(mnist_root):
    samples = load_mnist("train", mnist_root)[0][:1000]
    valid = load_mnist("valid", mnist_root)[0][:100]
    test = load_mnist("test", mnist_root)[0][:100]
    sigmas = [0.05, 0.1, 0.2, 0.4, 0.8]
    result = evaluate(samples, valid, test, sigmas)
    by_hand = {s: brute_force(valid, samples, s).mean().item() for s in sigmas}
    assert result.sigma == max(by_hand, key=by_hand.get)
    assert result.valid_ll_by_sigma == pytest.approx(by_hand, abs=0.01)
    test_ll = brute_force(test, samples, result.sigma)
    assert result.test_ll_mean == pytest.approx(test_ll.mean().item(), abs=0.01)
    assert (result.n_samples, result.n_valid, result.n_test) == (1000, 100, 100)
