"""Figure 1 from a real experiment: a 1-D GAN, and the paper's theory checked numerically.

p_data is a Gaussian on the line, z is uniform, G and D are small versions of the MNIST nets,
trained with Algorithm 1 (the train code's alternating rule). Densities live on a grid over
[0, 1] (G's sigmoid output range); p_g is a fine histogram of many samples of G.

Theory (section 4 of the paper): for fixed G the optimal D is D* = p_data / (p_data + p_g), and
C(G) = V(D*, G) = -log 4 + 2 JSD(p_data || p_g).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from advnets.gan.build import build_nets
from advnets.gan.nets import Discriminator, sample_noise
from advnets.gan.schedule import ClassicalMomentumSGD
from advnets.gan.updates import Nets, d_loss, discriminator_step, generator_step
from advnets.params import Params, ToyParams

GRID_POINTS = 500
DENSITY_SAMPLES = 1_000_000
SMOOTHING_BINS = 2.0  # std of the Gaussian kernel that smooths p_g's histogram, in bins


def grid() -> torch.Tensor:
    """Bin centres over [0, 1], float64."""
    return (torch.arange(GRID_POINTS, dtype=torch.float64) + 0.5) / GRID_POINTS


def gaussian_density(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def histogram_density(samples: torch.Tensor) -> torch.Tensor:
    """Density of samples on the grid's bins (integrates to 1 over [0, 1]): a histogram smoothed
    by a small Gaussian kernel, so D* is not dominated by counting noise."""
    counts = torch.histc(samples.double().flatten(), bins=GRID_POINTS, min=0.0, max=1.0)
    offsets = torch.arange(-4 * SMOOTHING_BINS, 4 * SMOOTHING_BINS + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / SMOOTHING_BINS) ** 2)
    smoothed = torch.nn.functional.conv1d(counts.view(1, 1, -1), (kernel / kernel.sum()).view(1, 1, -1), padding="same")
    return smoothed.flatten() / (smoothed.sum() / GRID_POINTS)


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """D* = p_data / (p_data + p_g); 1/2 where both vanish."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300), torch.full_like(total, 0.5))


def _integral(values: torch.Tensor) -> float:
    return values.sum().item() / GRID_POINTS


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(x, y)


def jsd(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence (nats) of two densities on the grid."""
    m = 0.5 * (p + q)
    kl_pm = _xlogy(p, p) - _xlogy(p, m)
    kl_qm = _xlogy(q, q) - _xlogy(q, m)
    return 0.5 * _integral(kl_pm) + 0.5 * _integral(kl_qm)


def value_function(p_data: torch.Tensor, p_g: torch.Tensor, d: torch.Tensor) -> float:
    """V(D, G) = E_data[log D(x)] + E_g[log(1 - D(x))] on the grid."""
    return _integral(_xlogy(p_data, d) + _xlogy(p_g, 1 - d))


def d_star_gap(d: torch.Tensor, d_star: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor) -> float:
    """max |D - D*| where the densities carry mass (elsewhere D* rests on too few samples)."""
    support = (p_data + p_g) > 0.05 * (p_data + p_g).max()
    return (d - d_star)[support].abs().max().item()


def train_discriminator(
    discriminator: Discriminator,
    sample_data: Callable[[int], torch.Tensor],
    sample_fakes: Callable[[int], torch.Tensor],
    params: Params,
    steps: int,
    lr: float,
) -> None:
    """Train D alone, against a fixed fake distribution, with the train code's D loss and SGD."""
    train = _toy_train_params(params).model_copy(update={"lr": lr})
    optimizer = ClassicalMomentumSGD(discriminator.parameters(), train)
    discriminator.train()
    for _ in range(steps):
        batch = train.batch_size
        loss = d_loss(discriminator(sample_data(batch)), discriminator(sample_fakes(batch)), train.d_loss_scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step_with_schedule(0)


@torch.no_grad()
def d_on_grid(discriminator: Discriminator, x: torch.Tensor) -> torch.Tensor:
    was_training = discriminator.training
    discriminator.eval()
    out = torch.sigmoid(discriminator(x.float().unsqueeze(1))).double()
    discriminator.train(was_training)
    return out


@dataclass
class Snapshot:
    """Everything one panel of Figure 1 draws."""

    step: int
    p_g: torch.Tensor
    d: torch.Tensor
    z: torch.Tensor  # z values on the lower line ...
    g_of_z: torch.Tensor  # ... and where G maps them


@dataclass
class ToyResult:
    x: torch.Tensor
    p_data: torch.Tensor
    snapshots: list[Snapshot]
    curve: list[dict[str, float]] = field(default_factory=list)  # step, jsd, value with D and D*
    checks: dict[str, float] = field(default_factory=dict)


def _toy_model(params: Params):
    toy = params.toy
    return params.model.model_copy(
        update={
            "noise": "uniform",
            "noise_dim": 1,
            "g_hidden": toy.g_hidden,
            "g_init_range": toy.g_init_range,
            "d_units": toy.d_units,
            "d_pieces": toy.d_pieces,
            "d_init_range": toy.d_init_range,
            "d_keep_input": 1.0,
            "d_keep_hidden": 1.0,
        }
    )


# The train keys the toy GAN takes from params.yaml; its own section sets the rest (_toy_train_params).
TRAIN_KEYS = ("g_loss", "d_loss_scale", "lr_min", "momentum_start", "momentum_end", "momentum_ramp_epochs")


def params_read(params: Params) -> dict:
    """Every param the toy stage's results depend on, flat (dvc.yaml lists these for stage toy):
    its section and TRAIN_KEYS. The model section is all replaced (_toy_model)."""
    train = params.flat("train")
    return {**{f"train.{key}": train[f"train.{key}"] for key in TRAIN_KEYS}, **params.flat("toy")}


def _toy_train_params(params: Params):
    toy = params.toy
    return params.train.model_copy(
        update={"update": "alternating", "k": toy.k, "lr": toy.lr, "lr_decay": 1.0, "batch_size": toy.batch_size}
    )


def run_toy(params: Params) -> ToyResult:
    toy: ToyParams = params.toy
    model, train = _toy_model(params), _toy_train_params(params)
    torch.manual_seed(toy.seed)
    nets = Nets.create(model, train, 1)
    generator, discriminator = nets.generator, nets.discriminator
    cpu = torch.device("cpu")

    def sample_data(n: int) -> torch.Tensor:
        return torch.randn(n, 1) * toy.data_std + toy.data_mean

    @torch.no_grad()
    def sample_fakes(n: int) -> torch.Tensor:
        return generator(sample_noise(n, model))

    x = grid()
    p_data = gaussian_density(x, toy.data_mean, toy.data_std)
    z_line = torch.linspace(-math.sqrt(3), math.sqrt(3), 15).unsqueeze(1)
    result = ToyResult(x=x, p_data=p_data, snapshots=[])

    def observe(step: int) -> None:
        p_g = histogram_density(sample_fakes(DENSITY_SAMPLES))
        d = d_on_grid(discriminator, x)
        d_star = optimal_discriminator(p_data, p_g)
        result.curve.append(
            {
                "step": step,
                "jsd": jsd(p_data, p_g),
                "value_d": value_function(p_data, p_g, d),
                "value_d_star": value_function(p_data, p_g, d_star),
            }
        )
        if step in toy.panel_steps:
            with torch.no_grad():
                result.snapshots.append(Snapshot(step, p_g, d, z_line.squeeze(1), generator(z_line).squeeze(1)))

    observe(0)
    first_panel_g = copy.deepcopy(generator) if toy.panel_steps[0] == 0 else None
    for step in range(1, toy.g_steps + 1):
        for _ in range(toy.k):
            discriminator_step(nets, sample_data(toy.batch_size), 0)
        generator_step(nets, toy.batch_size, cpu, 0)
        if step == toy.panel_steps[0]:
            first_panel_g = copy.deepcopy(generator)
        if step % toy.log_every == 0 or step in toy.panel_steps:
            observe(step)

    data_region = p_data > 0.01 * p_data.max()
    final_d = d_on_grid(discriminator, x)
    result.checks = {
        "final_jsd": result.curve[-1]["jsd"],
        "final_mean_abs_d_minus_half": (final_d[data_region] - 0.5).abs().mean().item(),
        f"g_at_step_{toy.panel_steps[0]}": _theory_check(params, first_panel_g, discriminator, sample_data, p_data, x),
        f"g_at_step_{toy.g_steps}": _theory_check(params, generator, discriminator, sample_data, p_data, x),
    }
    return result


def _theory_check(params, generator, discriminator, sample_data, p_data, x) -> dict[str, float]:
    """For a fixed G: D trained to convergence against D*, and C(G) against -log 4 + 2 JSD."""
    model = _toy_model(params)

    @torch.no_grad()
    def sample_fakes(n: int) -> torch.Tensor:
        return generator(sample_noise(n, model))

    p_g = histogram_density(sample_fakes(DENSITY_SAMPLES))
    d_star = optimal_discriminator(p_data, p_g)
    # A fresh D with wide initial weights: near p_data = p_g a small-weight D starts at the
    # saddle D = 1/2 (its nearly linear features carry no signal) and never leaves it.
    torch.manual_seed(params.toy.seed)
    _, converged = build_nets(model.model_copy(update={"d_init_range": params.toy.d_star_init_range}), 1)
    train_discriminator(converged, sample_data, sample_fakes, params, params.toy.d_star_steps, params.toy.d_star_lr)
    d_converged = d_on_grid(converged, x)
    divergence = jsd(p_data, p_g)
    return {
        "jsd": divergence,
        "max_abs_d_minus_d_star": d_star_gap(d_converged, d_star, p_data, p_g),
        "c_of_g": value_function(p_data, p_g, d_star),
        "minus_log4_plus_2jsd": -math.log(4) + 2 * divergence,
        "value_with_converged_d": value_function(p_data, p_g, d_converged),
        "c_of_g_minus_value_with_converged_d": value_function(p_data, p_g, d_star) - value_function(p_data, p_g, d_converged),
    }
