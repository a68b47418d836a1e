"""The paper's other datasets: their params, nets and training, and each pipeline end to end on
fixtures written by the tests in the real formats (a CIFAR-10 archive, a TFD .mat)."""


import pytest
import torch

from advnets.params import validate
from advnets.pipeline.train import run_gan_training
from fakes import write_archive


def test_an_interrupted_cifar10_run_resumes_with_more_epochs(raw_params, workdir):
    """The resumable keys (train.epochs ...) are recognised under a dataset's prefix, and the run
    goes on from its checkpoint: epoch 1 is not trained again, and the nets end as an uninterrupted
    run's do."""
    from advnets.data.cifar10 import prepare_cifar10
    from fakes import Interrupt, interrupt_after

    prepare_cifar10(workdir / "data" / "cifar10", workdir / "mirror", expected_md5=write_archive(workdir / "mirror"))
    tiny_gan(raw_params["cifar10"]["fc"], [16, 16])
    raw_params["cifar10"]["fc"]["train"]["batch_size"] = 6
    with pytest.raises(Interrupt):
        run_gan_training(validate(raw_params), "cifar10.fc", on_epoch_end=interrupt_after(1))
    checkpoint = workdir / "models" / "cifar10_fc" / "checkpoint.pt"
    epoch_1 = torch.load(checkpoint, weights_only=True)["history"][0]
    raw_params["cifar10"]["fc"]["train"]["epochs"] = 3
    history = run_gan_training(validate(raw_params), "cifar10.fc")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[0] == epoch_1  # from the checkpoint, its timings too: not trained again
    assert "valid_parzen" not in history[0]  # no Parzen monitor on contrast-normalised images
    resumed = torch.load(workdir / "models" / "cifar10_fc" / "generator.pt", weights_only=True)

    whole = run_gan_training(validate(raw_params), "cifar10.fc")  # the checkpoint is gone: a new run
    assert whole[0] != epoch_1
    untimed = [[{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in run] for run in (history, whole)]
    assert untimed[0] == untimed[1]
    uninterrupted = torch.load(workdir / "models" / "cifar10_fc" / "generator.pt", weights_only=True)
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)


# ---- the pipelines end to end, on tiny nets ----


def tiny_gan(section: dict, hidden: list[int], **model) -> None:
    section["model"].update(g_hidden=hidden, g_activations=section["model"]["g_activations"][-len(hidden):],
                            g_hidden_biases=section["model"]["g_hidden_biases"][-len(hidden):], d_units=[8], d_pieces=2, **model)
    section["train"].update(epochs=2, batches_per_epoch=2, grid_every=1)
