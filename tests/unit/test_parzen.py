import math

import pytest
import torch

from advnets.parzen import PixelRangeError, evaluate, evaluate_folds, log_likelihood, log_likelihoods, mean_and_se
from fakes import brute_force


def test_matches_brute_force_on_random_data():
    generator = torch.Generator().manual_seed(0)
    samples, points = torch.rand(500, 50, generator=generator), torch.rand(40, 50, generator=generator)
    error = (log_likelihood(points, samples, 0.3) - brute_force(points, samples, 0.3)).abs().max()
    assert error < 0.01


def test_one_sample_gives_the_gaussian_log_density():
    mu = torch.tensor([[0.2, 0.5, 0.9]])
    x = torch.tensor([[0.4, 0.1, 0.9]])
    sigma = 0.3
    expected = -(0.2**2 + 0.4**2) / (2 * sigma**2) - 3 * math.log(sigma * math.sqrt(2 * math.pi))
    assert log_likelihood(x, mu, sigma).item() == pytest.approx(expected, abs=1e-5)


def test_result_does_not_depend_on_the_chunk_size():
    generator = torch.Generator().manual_seed(1)
    samples, points = torch.rand(300, 20, generator=generator), torch.rand(37, 20, generator=generator)
    whole = log_likelihoods(points, samples, [0.2, 0.5], chunk_size=1000)
    assert torch.allclose(log_likelihoods(points, samples, [0.2, 0.5], chunk_size=5), whole, atol=1e-6)


def test_standard_error_uses_the_population_std():
    mean, se = mean_and_se(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    assert mean == 2.5
    assert se == pytest.approx(math.sqrt(1.25) / 2)


def test_pixels_outside_the_unit_interval_are_refused():
    images = torch.rand(10, 784)
    with pytest.raises(PixelRangeError, match=r"samples must lie in \[0, 1\].*-543 nats"):
        log_likelihood(images, images * 2 - 1, 0.2)
    with pytest.raises(PixelRangeError, match="points"):
        log_likelihood(images + 0.5, images, 0.2)


def two_folds():
    """Samples in [0.45, 0.55]^10; fold 0 validates on points next to samples (the smallest sigma
    wins), fold 1 on points far away (the largest wins)."""
    rng = torch.Generator().manual_seed(2)
    samples = 0.45 + 0.1 * torch.rand(100, 10, generator=rng)
    near = samples[:30] + 0.001 * torch.rand(30, 10, generator=rng)
    far = 0.05 * torch.rand(30, 10, generator=rng)
    tests = torch.rand(20, 10, generator=rng), torch.rand(25, 10, generator=rng)
    return samples, [(near, tests[0]), (far, tests[1])]


def test_each_fold_chooses_sigma_on_its_own_validation_points_and_scores_its_test_points():
    samples, folds = two_folds()
    sigmas = [0.01, 0.1, 1.0]
    result = evaluate_folds(samples, folds, sigmas, chunk_size=7)
    assert [fold.sigma for fold in result.folds] == [0.01, 1.0]
    assert result.folds == tuple(evaluate(samples, valid, test, sigmas, chunk_size=7) for valid, test in folds)
    for fold, (_, test) in zip(result.folds, folds):
        assert fold.test_ll_mean == pytest.approx(brute_force(test, samples, fold.sigma).mean().item(), abs=0.01)
    means = [fold.test_ll_mean for fold in result.folds]
    assert (result.mean, result.se) == mean_and_se(torch.tensor(means, dtype=torch.float64))
    assert result.mean == pytest.approx(sum(means) / 2)
    assert result.se == pytest.approx(abs(means[0] - means[1]) / 2 / math.sqrt(2))  # population std / sqrt(2)


def test_folds_result_as_dict():
    samples, folds = two_folds()
    result = evaluate_folds(samples, folds, [0.01, 0.1, 1.0])
    fold = result.folds[1]
    assert result.as_dict() == {
        "test_ll_mean": result.mean,
        "test_ll_se": result.se,
        "n_folds": 2,
        "n_samples": 100,
        "folds": [
            {"sigma": 0.01, "test_ll_mean": result.folds[0].test_ll_mean, "test_ll_se": result.folds[0].test_ll_se,
             "n_valid": 30, "n_test": 20},
            {"sigma": 1.0, "test_ll_mean": fold.test_ll_mean, "test_ll_se": fold.test_ll_se, "n_valid": 30, "n_test": 25},
        ],
    }
    with pytest.raises(ValueError, match="at least one fold"):
        evaluate_folds(samples, [], [0.1])
