"""The CUDA-graph step against the eager step (GPU only: skipped where torch sees no CUDA device)."""

import copy

import pytest
import torch

from advnets.gan.cuda_graph import EAGER_STEPS, GraphedSimultaneousStep
from advnets.gan.trainer import Trainer
from advnets.gan.updates import Nets, simultaneous_step
from advnets.params import validate
from conftest import TINY, override

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def nets_on_gpu(params, model=None) -> Nets:
    """The nets of params (or of `model` with params.train) on the GPU, from seed 0."""
    torch.manual_seed(0)
    nets = Nets.create(model or params.model, params.train, 784)
    nets.generator.to(CUDA).train()
    nets.discriminator.to(CUDA).train()
    return nets


def run_steps(step, images, epochs_per_step):
    """Steps on fixed batches; the completed-epoch count changes the momentum between steps."""
    torch.cuda.manual_seed(1)
    figures = []
    for i, completed in enumerate(epochs_per_step):
        stats, g_loss = step(images[i % 4 * 100 :][:100], completed)
        figures.append(torch.stack([stats.loss, stats.real, stats.fake, g_loss]).clone())
    return torch.stack(figures)


@pytest.fixture
def paper_params(raw_params):
    return validate(copy.deepcopy(raw_params))


@pytest.fixture
def images():
    return torch.rand(400, 784, generator=torch.Generator().manual_seed(2)).to(CUDA)


# Two epochs of steps: the momentum changes after the eager steps, so the graph is captured twice.
EPOCHS = [0] * (EAGER_STEPS + 4) + [1] * 4


def test_graph_replay_matches_the_eager_step(paper_params, images):
    eager_nets, graph_nets = nets_on_gpu(paper_params), nets_on_gpu(paper_params)
    eager = run_steps(lambda x, e: simultaneous_step(eager_nets, x, e), images, EPOCHS)
    graphed_step = GraphedSimultaneousStep(graph_nets, (100, 784), CUDA)
    captures, capture = [], graphed_step._capture
    graphed_step._capture = lambda: (captures.append(graphed_step.eager_steps), capture())
    graphed = run_steps(graphed_step, images, EPOCHS)
    assert len(captures) == 2  # after the eager steps, and when the momentum changed
    assert graph_nets.opt_d.steps_done == len(EPOCHS)
    torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager_nets.generator.parameters(), graph_nets.generator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager_nets.discriminator.parameters(), graph_nets.discriminator.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def assert_replay_is_the_eager_step_bit_for_bit(params, images, model=None) -> Nets:
    """The same steps eagerly and by graph replay, from the same nets: equal figures and weights,
    bit for bit. Returns the graphed nets."""
    eager_nets, graph_nets = nets_on_gpu(params, model), nets_on_gpu(params, model)
    eager = run_steps(lambda x, e: simultaneous_step(eager_nets, x, e), images, EPOCHS)
    graphed = run_steps(GraphedSimultaneousStep(graph_nets, (100, 784), CUDA), images, EPOCHS)
    assert torch.equal(eager, graphed)
    for net in ("generator", "discriminator"):
        for a, b in zip(getattr(eager_nets, net).parameters(), getattr(graph_nets, net).parameters()):
            assert torch.equal(a, b), net
    return graph_nets


def test_graph_replay_is_bit_identical_to_the_eager_step(paper_params, images):
    assert_replay_is_the_eager_step_bit_for_bit(paper_params, images)


def test_gpu_trainer_resumes_where_it_stopped(raw_params):
    params = validate(override(copy.deepcopy(raw_params), {**TINY, "train": {**TINY["train"], "batches_per_epoch": 8}}))
    images = torch.rand(200, 784, generator=torch.Generator().manual_seed(0))
    straight = Trainer(params, images, images[:50], CUDA)
    assert isinstance(straight.simultaneous_step, GraphedSimultaneousStep)
    straight.train_epoch()
    state = copy.deepcopy(straight.state_dict())
    straight.train_epoch()
    resumed = Trainer(params, images, images[:50], CUDA)
    resumed.train_epoch()  # its graph holds this trainer's optimizer state, which loading replaces
    resumed.load_state_dict(state)
    resumed.train_epoch()
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_graph_replay_with_the_norm_cap_is_bit_identical_to_the_eager_step(paper_params, images):
    """TFD's nets cap every unit's incoming weight norm after each update (renorm_ inside the
    captured step). Until this passes on a GPU, the trainer runs such nets eagerly."""
    model = paper_params.tfd.pretrain.model.model_copy(
        update={"g_hidden": [64, 128], "g_output_sparse": 20, "d_units": [32, 32], "max_col_norm": 0.5}
    )
    graph_nets = assert_replay_is_the_eager_step_bit_for_bit(paper_params, images, model)
    # G's sparse N(0, 1) output weights start far above the cap
    assert max(w.norm(dim=1).max() for w in graph_nets.generator.parameters() if w.dim() == 2) <= 0.5 + 1e-5
