import torch
from PIL import Image

from advnets import figures
from advnets.nets import build_nets, sample_noise
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
