import numpy as np
import pytest
import torch
from PIL import Image

from advnets.gan.build import build_nets
from advnets.gan.nets import sample_noise
from advnets.report import figures
from advnets.toy import Snapshot, gaussian_density, grid


def brute_force_nearest(queries, pool):
    return torch.tensor([int(((pool - q) ** 2).sum(dim=1).argmin()) for q in queries])


def test_nearest_neighbours_are_the_nearest_across_chunks():
    rng = torch.Generator().manual_seed(0)
    pool, queries = torch.rand(1000, 784, generator=rng), torch.rand(4, 784, generator=rng)
    queries[2] = pool[777] + 0.001
    found = figures.nearest_neighbours(queries, pool, chunk=128)
    assert torch.equal(found, brute_force_nearest(queries, pool))
    assert found[2] == 777


def test_figure2_layout_and_its_nearest_neighbour_column(tmp_path, tiny_params):
    torch.manual_seed(0)
    generator, _ = build_nets(tiny_params.model, 784)
    pool = torch.rand(300, 784, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "figure2.png"
    nearest = figures.figure2(path, generator, tiny_params.model, pool, rows=4, cols=5, seed=3, scale=2)

    samples = generator(sample_noise(20, tiny_params.model, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(nearest, brute_force_nearest(samples.view(4, 5, -1)[:, -1], pool))
    # 5 tiles of 28 + 2 padding, a 12-pixel gap, one framed column (30 + 2 + 2 x 2), scaled x 2
    assert Image.open(path).size == ((5 * 30 + 2 + 12 + 30 + 2 + 4) * 2, (4 * 30 + 2 + 4) * 2)


class FixedGenerator(torch.nn.Module):
    """Stands in for G: the given flat images, in order, whatever the noise."""

    def __init__(self, outputs):
        super().__init__()
        self.register_buffer("outputs", outputs)

    def forward(self, z):
        return self.outputs[: len(z)]


def contrast_normalised(x):
    """CIFAR-10's preprocessing: each image with mean 0 and L2 norm 55."""
    x = x - x.mean(dim=1, keepdim=True)
    return 55 * x / x.norm(dim=1, keepdim=True)


def read_png(path):
    """[3, H, W] floats in [0, 1]."""
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


def tile(png, top, left, side, scale):
    """The side x side image drawn with its top-left pixel at (top, left) before scaling."""
    return png[:, top * scale : (top + side) * scale : scale, left * scale : (left + side) * scale : scale]


def test_figure2_cifar_colour_tiles_use_the_gcn_viewer_mapping(tmp_path, tiny_params):
    rng = torch.Generator().manual_seed(0)
    samples = contrast_normalised(torch.randn(6, 3072, generator=rng))
    samples[0] = 0.0  # an all-zero image: no division by zero, drawn mid-grey
    pool = contrast_normalised(torch.randn(50, 3072, generator=rng))
    pool[17], pool[33] = samples[2] + 0.01, samples[5] * 1.01  # planted neighbours of each row's last sample
    path = tmp_path / "cifar.png"
    nearest = figures.figure2(
        path, FixedGenerator(samples), tiny_params.model, pool, rows=2, cols=3, seed=0, scale=2,
        image_shape=(3, 32, 32), display="gcn",
    )
    assert nearest.tolist() == [17, 33]
    png = read_png(path)
    # 3 tiles of 32 + 2 padding, a 12-pixel gap, one framed column (34 + 2 + 2 x 2), scaled x 2
    assert png.shape == (3, (2 * 34 + 2 + 4) * 2, (3 * 34 + 2 + 12 + 34 + 2 + 4) * 2)

    def gcn_view(x):
        return ((x / x.abs().max() + 1) / 2).view(3, 32, 32)

    assert (tile(png, 2 + 34, 2 + 34, 32, 2) - gcn_view(samples[4])).abs().max() <= 1 / 255  # row 1, col 1
    column = 3 * 34 + 2 + figures.SEPARATOR + 2 + 2  # after the gap, the frame and the grid's padding
    assert (tile(png, 2 + 2 + 34, column, 32, 2) - gcn_view(pool[33])).abs().max() <= 1 / 255
    assert (tile(png, 2, 2, 32, 2) * 255).round().eq(128).all()


def test_figure2_tfd_grey_48_by_48(tmp_path, tiny_params):
    rng = torch.Generator().manual_seed(1)
    samples, pool = torch.rand(20, 2304, generator=rng), torch.rand(40, 2304, generator=rng)
    pool[7] = samples[9] + 0.001  # near the last sample of row 1
    args = (FixedGenerator(samples), tiny_params.model, pool)
    nearest = figures.figure2(tmp_path / "tfd.png", *args, rows=4, cols=5, seed=0, scale=2, image_shape=(1, 48, 48))
    assert torch.equal(nearest, brute_force_nearest(samples.view(4, 5, -1)[:, -1], pool)) and nearest[1] == 7
    png = read_png(tmp_path / "tfd.png")
    assert png.shape == (3, (4 * 50 + 2 + 4) * 2, (5 * 50 + 2 + 12 + 50 + 2 + 4) * 2)
    grey = tile(png, 2 + 2 * 50, 2 + 3 * 50, 48, 2)  # row 2, col 3: sample 13
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[0], grey[2])
    assert (grey[0] - samples[13].view(48, 48)).abs().max() <= 1 / 255
    # the default (square grey, values as they are) draws the same bytes
    figures.figure2(tmp_path / "default.png", *args, rows=4, cols=5, seed=0, scale=2)
    assert (tmp_path / "default.png").read_bytes() == (tmp_path / "tfd.png").read_bytes()


def test_figure3_colour_and_unknown_display_names(tmp_path, tiny_params):
    frames = contrast_normalised(torch.randn(2 * 4, 3072, generator=torch.Generator().manual_seed(2))).view(2, 4, -1)
    figures.figure3(tmp_path / "figure3.png", frames, scale=1, image_shape=(3, 32, 32), display="gcn")
    png = read_png(tmp_path / "figure3.png")
    assert png.shape == (3, 2 * 34 + 2, 4 * 34 + 2)
    x = frames[1, 2]
    assert (tile(png, 2 + 34, 2 + 2 * 34, 32, 1) - ((x / x.abs().max() + 1) / 2).view(3, 32, 32)).abs().max() <= 1 / 255
    with pytest.raises(ValueError, match="'hsv'"):
        figures.figure2(
            tmp_path / "no.png", FixedGenerator(frames[0]), tiny_params.model, frames[1], rows=1, cols=4, seed=0,
            scale=1, image_shape=(3, 32, 32), display="hsv",
        )
    assert not (tmp_path / "no.png").exists()


def test_interpolation_endpoints_are_g_of_z0_and_g_of_z1(tmp_path, tiny_params):
    torch.manual_seed(0)
    generator, _ = build_nets(tiny_params.model, 784)
    frames = figures.interpolation(generator, tiny_params.model, rows=2, frames=7, seed=5)
    rng = torch.Generator().manual_seed(5)
    z0, z1 = sample_noise(2, tiny_params.model, generator=rng), sample_noise(2, tiny_params.model, generator=rng)
    assert torch.allclose(frames[:, 0], generator(z0), atol=1e-6)
    assert torch.allclose(frames[:, -1], generator(z1), atol=1e-6)
    figures.figure3(tmp_path / "figure3.png", frames, scale=3)
    assert Image.open(tmp_path / "figure3.png").size == ((7 * 30 + 2) * 3, (2 * 30 + 2) * 3)


def test_matplotlib_figures_have_their_size_and_are_byte_stable(tmp_path):
    curve = tmp_path / "curve.csv"
    curve.write_text("epoch,d_loss,g_loss,d_real,d_fake,valid_parzen\n1,0.6,0.8,0.6,0.4,-100\n2,0.5,0.9,0.7,0.3,-90\n")
    figures.training_curves(tmp_path / "a.png", curve)
    figures.training_curves(tmp_path / "b.png", curve)
    assert Image.open(tmp_path / "a.png").size == (1430, 418)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

    sweep = tmp_path / "sweep.csv"
    sweep.write_text("sigma,valid_ll,valid_ll_real_images\n0.1,100,200\n0.2,150,180\n")
    figures.sigma_sweep(tmp_path / "sweep.png", sweep, 0.2)
    assert Image.open(tmp_path / "sweep.png").size == (660, 440)

    x = grid()
    snaps = [Snapshot(s, gaussian_density(x, 0.5, 0.1), torch.full_like(x, 0.5), torch.zeros(3), torch.rand(3)) for s in range(4)]
    figures.figure1(tmp_path / "figure1.png", x, gaussian_density(x, 0.6, 0.1), snaps)
    assert Image.open(tmp_path / "figure1.png").size == (1760, 396)
    figures.jsd_curve(tmp_path / "jsd.png", [{"step": 0, "jsd": 0.2, "value_d_star": -1.0}, {"step": 5, "jsd": 0.1, "value_d_star": -1.2}])
    assert Image.open(tmp_path / "jsd.png").size == (660, 440)

    seeds = [{"valid_curve": [[5, 100.0], [10, 150.0]]}, {"valid_curve": [[5, 110.0]]}]
    table = [
        {"changes": {}, "n_seeds": 2, "seeds": seeds},
        {"changes": {"train.epochs": "20"}, "n_seeds": 1, "seeds": [{"valid_curve": [[20, 260.0]]}]},
        {"changes": {"select.every": "absent"}, "n_seeds": 1, "seeds": [{}]},  # no selection, no curve
    ]
    for name in ("v1.png", "v2.png"):
        figures.variant_curves(tmp_path / name, table, (225.0, 2.0), {10: 0.4, 20: 0.6})
    assert Image.open(tmp_path / "v1.png").size == (1100, 660)
    assert (tmp_path / "v1.png").read_bytes() == (tmp_path / "v2.png").read_bytes()
    seeds[1]["valid_curve"] = [[5, 120.0]]  # the drawing follows the curves
    figures.variant_curves(tmp_path / "v3.png", table, (225.0, 2.0), {10: 0.4, 20: 0.6})
    assert (tmp_path / "v3.png").read_bytes() != (tmp_path / "v1.png").read_bytes()
    figures.variant_curves(tmp_path / "v4.png", table, (225.0, 2.0), {})  # no decay: no top axis
    assert Image.open(tmp_path / "v4.png").size == (1100, 660)


def test_a_variant_wholly_below_the_chart_says_so_in_its_legend_entry():
    seed = {"valid_curve": [[5, -281.9], [10, -252.3]]}
    row = {"changes": {"train.update": "alternating"}, "n_seeds": 2, "seeds": [seed, {"valid_curve": [[5, -300.0]]}]}
    assert figures.variant_label(row) == "train.update=alternating (2 seeds): below 0 throughout (best -252), off the chart"
    seed["valid_curve"].append([15, 3.0])  # one seed reaches the chart: the other is counted
    assert figures.variant_label(row) == "train.update=alternating (2 seeds): 1 of them below 0 throughout, off the chart"
    row["seeds"][1]["valid_curve"].append([20, 5.0])
    assert figures.variant_label(row) == "train.update=alternating (2 seeds)"
    assert figures.variant_label({"changes": {}, "n_seeds": 1, "seeds": [{}]}) == "the paper's configuration (1 seed)"
