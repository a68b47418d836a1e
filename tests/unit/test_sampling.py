import torch

from advnets.gan.build import build_nets
from advnets.gan.sampling import draw_samples, load_generator, load_samples, save_samples


def test_samples_are_deterministic_for_a_seed(tiny_params):
    generator, _ = build_nets(tiny_params.model, 784)
    first = draw_samples(generator, tiny_params.model, 250, seed=3, batch_size=100)
    assert first.shape == (250, 784) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, draw_samples(generator, tiny_params.model, 250, seed=3, batch_size=100))
    assert not torch.equal(first, draw_samples(generator, tiny_params.model, 250, seed=4, batch_size=100))


def test_saved_generator_loads_back_exactly(tmp_path, tiny_params):
    generator, _ = build_nets(tiny_params.model, 784)
    torch.save(generator.state_dict(), tmp_path / "generator.pt")
    loaded = load_generator(tmp_path / "generator.pt", tiny_params.model)
    z = torch.rand(5, tiny_params.model.noise_dim)
    assert torch.equal(loaded(z), generator.eval()(z))


def test_samples_file_round_trips_as_float32(tmp_path):
    samples = torch.rand(7, 784, dtype=torch.float64)
    save_samples(tmp_path / "samples.npy", samples)
    loaded = load_samples(tmp_path / "samples.npy")
    assert loaded.dtype == torch.float32 and torch.equal(loaded, samples.float())
