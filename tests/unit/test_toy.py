import math

import pytest
import torch

from advnets import toy
from advnets.gan.build import build_nets
from advnets.params import validate
from conftest import override


def test_identical_densities_give_d_half_zero_jsd_and_c_minus_log4():
    x = toy.grid()
    p = toy.gaussian_density(x, 0.5, 0.1)
    d_star = toy.optimal_discriminator(p, p)
    assert torch.allclose(d_star, torch.full_like(d_star, 0.5))
    assert toy.jsd(p, p) == pytest.approx(0.0, abs=1e-12)
    assert toy.value_function(p, p, d_star) == pytest.approx(-math.log(4), abs=1e-3)


def test_disjoint_densities_give_jsd_log2():
    x = toy.grid()
    p, q = toy.gaussian_density(x, 0.2, 0.02), toy.gaussian_density(x, 0.8, 0.02)
    assert toy.jsd(p, q) == pytest.approx(math.log(2), abs=1e-4)


def test_c_of_g_equals_minus_log4_plus_twice_the_jsd():
    x = toy.grid()
    p, q = toy.gaussian_density(x, 0.45, 0.08), toy.gaussian_density(x, 0.55, 0.1)
    c_of_g = toy.value_function(p, q, toy.optimal_discriminator(p, q))
    assert c_of_g == pytest.approx(-math.log(4) + 2 * toy.jsd(p, q), abs=1e-4)  # grid quadrature


def test_histogram_density_integrates_to_one_and_matches_the_gaussian():
    samples = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0)) * 0.1 + 0.5
    density = toy.histogram_density(samples)
    assert density.sum().item() / toy.GRID_POINTS == pytest.approx(1.0)
    assert (density - toy.gaussian_density(toy.grid(), 0.5, 0.1)).abs().max() < 0.1


def test_a_discriminator_trained_to_convergence_reaches_d_star(raw_params):
    """Known answer: data N(0.55, 0.06), fakes N(0.45, 0.06), D* = p_data / (p_data + p_g)."""
    params = validate(raw_params)
    model = toy._toy_model(params).model_copy(update={"d_init_range": params.toy.d_star_init_range})
    torch.manual_seed(0)
    _, discriminator = build_nets(model, 1)
    toy.train_discriminator(
        discriminator,
        lambda n: torch.randn(n, 1) * 0.06 + 0.55,
        lambda n: torch.randn(n, 1) * 0.06 + 0.45,
        params,
        steps=1500,
        lr=params.toy.d_star_lr,
    )
    x = toy.grid()
    p_data, p_g = toy.gaussian_density(x, 0.55, 0.06), toy.gaussian_density(x, 0.45, 0.06)
    gap = toy.d_star_gap(toy.d_on_grid(discriminator, x), toy.optimal_discriminator(p_data, p_g), p_data, p_g)
    assert gap < 0.1


def test_short_toy_run_records_panels_curve_and_checks(raw_params):
    params = validate(override(raw_params, {"toy": {
        "g_steps": 40, "panel_steps": [0, 10, 20, 40], "log_every": 10, "d_star_steps": 20, "batch_size": 64,
    }}))
    result = toy.run_toy(params)
    assert [s.step for s in result.snapshots] == [0, 10, 20, 40]
    assert [row["step"] for row in result.curve] == [0, 10, 20, 30, 40]
    assert set(result.checks) == {"final_jsd", "final_mean_abs_d_minus_half", "g_at_step_0", "g_at_step_40"}
    check = result.checks["g_at_step_40"]
    assert check["c_of_g"] == pytest.approx(check["minus_log4_plus_2jsd"], abs=1e-3)
    assert check["value_with_converged_d"] <= check["c_of_g"] + 1e-3  # D* maximises V
