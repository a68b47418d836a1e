"""The paper's other datasets: their params, nets and training, and each pipeline end to end on
fixtures written by the tests in the real formats (a CIFAR-10 archive, a TFD .mat)."""

import copy
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from test_cifar10 import write_archive
from test_tfd import write_mat
from torch import nn

from advnets.gan.build import build_nets
from advnets.gan.nets import StackedGenerator, cap_column_norms, sample_noise
from advnets.gan.sampling import load_generator
from advnets.gan.updates import Nets, simultaneous_step
from advnets.params import ParamsError, read_yaml, validate
from advnets.pipeline.train import run_gan_training
from conftest import REPO


def test_defaults_are_the_official_files(raw_params):
    params = validate(raw_params)
    fc, conv, tfd = params.cifar10.fc, params.cifar10.conv, params.tfd
    assert (fc.model.g_hidden, fc.model.g_activations, fc.model.g_output) == ([8000, 8000], ["relu", "sigmoid"], "linear")
    assert (fc.model.g_output_init_range, fc.model.d_units, fc.train.lr, fc.train.batch_size) == (0.5, [1600, 1600], 0.025, 100)
    assert (conv.train.lr, conv.train.batch_size, conv.model.d_units) == (0.004, 128, [500])
    assert [(c.channels, c.kernel, c.pad, c.pool) for c in conv.model.d_conv] == [(32, 8, 4, 4), (32, 8, 3, 4), (192, 5, 3, 2)]
    assert (tfd.pretrain.train.epochs, tfd.train.epochs, tfd.train.lr) == (50, 22, 0.05)
    assert (tfd.pretrain.model.g_hidden_biases, tfd.pretrain.model.g_output_sparse) == ([0.0, -2.0], 100)
    assert tfd.pretrain.model.max_col_norm == tfd.model.max_col_norm == 1.9365
    assert (tfd.model.g_hidden, tfd.model.g_output_bias) == ([8000], -2.0)
    assert params.gan("tfd.pretrain") is tfd.pretrain


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["cifar10"]["fc"]["model"].update(g_activations=["relu"]), "cifar10.fc.model: g_hidden, g_activations"),
        (lambda r: r["cifar10"]["conv"]["model"]["deconv"].update(side=9), "cifar10.conv.model: deconv.channels"),
        (lambda r: r["tfd"]["pretrain"]["model"].update(g_output_init_range=0.05), "tfd.pretrain.model: set exactly one"),
        (lambda r: r["tfd"]["train"].update(lr_typo=1), "tfd.train.lr_typo: unknown key"),
        (lambda r: r["tfd"]["data"].update(fold=5), "tfd.data.fold: input should be less than or equal to 4"),
    ],
)
def test_a_bad_value_names_its_key(raw_params, change, message):
    change(raw_params)
    with pytest.raises(ParamsError, match=message):
        validate(raw_params)


def small(model, **changes):
    return model.model_copy(update={"d_units": [8], "d_pieces": 2, **changes})


def test_cifar10_fc_generator_is_linear_with_its_own_output_init(raw_params):
    model = small(validate(raw_params).cifar10.fc.model, g_hidden=[16, 16])
    torch.manual_seed(0)
    generator, discriminator = build_nets(model, 3072)
    hidden, output = generator[0], generator.output_layer
    assert isinstance(generator[1], nn.ReLU) and isinstance(generator[3], nn.Sigmoid) and isinstance(generator[-1], nn.Identity)
    assert 0.04 < hidden.weight.abs().max() <= 0.05 and 0.45 < output.weight.abs().max() <= 0.5
    out = generator(sample_noise(64, model))
    assert out.shape == (64, 3072) and (out.min() < 0 or out.max() > 1)  # linear: not confined to [0, 1]
    assert discriminator(out).shape == (64,)


def test_tfd_first_stage_init_sparse_output_and_sigmoid_bias(raw_params):
    model = small(validate(raw_params).tfd.pretrain.model, g_hidden=[16, 300])
    torch.manual_seed(0)
    generator, _ = build_nets(model, 2304)
    assert torch.all(generator[2].bias == -2.0) and torch.all(generator[0].bias == 0.0)
    nonzero_per_unit = (generator.output_layer.weight != 0).sum(dim=1)
    assert torch.all(nonzero_per_unit == 100)  # sparse_init: 100 inputs per output unit
    assert generator.output_layer.weight.std() > 0.5  # N(0, 1) weights, not the irange


def test_max_col_norm_caps_each_units_incoming_weights():
    layer = nn.Linear(10, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(40.0).view(4, 10) / 10)
    before = layer.weight.norm(dim=1)
    cap_column_norms(layer, 1.9365)
    after = layer.weight.norm(dim=1)
    assert torch.all(after <= 1.9365 + 1e-5)
    long = before > 1.9365
    assert torch.allclose(after[long], torch.full_like(after[long], 1.9365), atol=1e-5)
    assert torch.equal(after[~long], before[~long])  # shorter rows are untouched


def test_a_tfd_step_keeps_every_norm_capped(raw_params):
    params = validate(raw_params)
    model = small(params.tfd.pretrain.model, g_hidden=[16, 300], max_col_norm=0.05)
    train = params.tfd.pretrain.train.model_copy(update={"lr": 1.0})
    torch.manual_seed(0)
    nets = Nets.create(model, train, 2304)
    simultaneous_step(nets, torch.rand(10, 2304), 0)
    for net in (nets.generator, nets.discriminator):
        for layer in (m for m in net.modules() if isinstance(m, nn.Linear)):
            assert layer.weight.norm(dim=1).max() <= 0.05 + 1e-6


def test_the_conv_step_takes_both_gradients_before_either_net_moves(raw_params):
    """Without dropout, the first step is plain SGD: each net moves by -lr times its gradient at the
    pre-update parameters of both nets, from one D pass."""
    params = validate(raw_params)
    conv = params.cifar10.conv
    model = small(conv.model, g_hidden=[8, 8000], d_keep_input=1.0, d_keep_hidden=1.0,
                  d_conv=[conv.model.d_conv[0].model_copy(update={"channels": 2})])
    torch.manual_seed(0)
    nets = Nets.create(model, conv.train, 3072, (3, 32, 32))
    g0, d0 = copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator)
    x = torch.randn(4, 3072)
    state = torch.get_rng_state()
    simultaneous_step(nets, x, 0)

    torch.set_rng_state(state)
    fakes = g0(sample_noise(4, model))
    logits = d0(torch.cat([x, fakes]))
    real, fake = logits[:4], logits[4:]
    loss_d = 0.5 * (nn.functional.softplus(-real).mean() + nn.functional.softplus(fake).mean())
    loss_g = nn.functional.softplus(-fake).mean()
    d_grads = torch.autograd.grad(loss_d, list(d0.parameters()), retain_graph=True)
    g_grads = torch.autograd.grad(loss_g, list(g0.parameters()))
    lr = conv.train.lr
    for net, start, grads in ((nets.discriminator, d0, d_grads), (nets.generator, g0, g_grads)):
        for after, before, grad in zip(net.parameters(), start.parameters(), grads):
            assert torch.allclose(after, before - lr * grad, atol=1e-6)


def test_the_deconv_generator_takes_its_output_keys(raw_params):
    model = validate(raw_params).cifar10.conv.model.model_copy(
        update={"g_hidden": [8, 8000], "g_output_init_range": 0.5, "g_output_bias": 0.25, "g_hidden_biases": [0.0, -1.0]}
    )
    torch.manual_seed(0)
    generator, _ = build_nets(model, 3072, (3, 32, 32))
    assert 0.45 < generator.deconv.weight.abs().max() <= 0.5
    assert torch.all(generator.bias == 0.25) and generator.bias.shape == (3, 32, 32)
    assert torch.all(generator.hidden[2].bias == -1.0)


def test_an_interrupted_cifar10_run_resumes_with_more_epochs(raw_params, workdir):
    """The resumable keys (train.epochs ...) are recognised under a dataset's prefix."""
    from test_train import Interrupt, interrupt_after

    from advnets.data.cifar10 import prepare_cifar10

    prepare_cifar10(workdir / "data" / "cifar10", workdir / "mirror", expected_md5=write_archive(workdir / "mirror"))
    tiny_gan(raw_params["cifar10"]["fc"], [16, 16])
    raw_params["cifar10"]["fc"]["train"]["batch_size"] = 6
    with pytest.raises(Interrupt):
        run_gan_training(validate(raw_params), "cifar10.fc", on_epoch_end=interrupt_after(1))
    raw_params["cifar10"]["fc"]["train"]["epochs"] = 3
    history = run_gan_training(validate(raw_params), "cifar10.fc")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert "valid_parzen" not in history[0]  # no Parzen monitor on contrast-normalised images


def test_the_second_tfd_stage_stacks_a_new_block_on_the_first_and_reloads(raw_params, tmp_path):
    params = validate(raw_params)
    first_model = small(params.tfd.pretrain.model, g_hidden=[16, 200])
    torch.manual_seed(0)
    first, _ = build_nets(first_model, 2304)
    block_model = small(params.tfd.model, g_hidden=[12])
    generator, _ = build_nets(block_model, 2304, pretrained=first)
    assert isinstance(generator, StackedGenerator) and generator[1] is first
    assert generator[0].output_layer.out_features == first_model.noise_dim
    assert torch.all(generator[0].output_layer.bias == -2.0)
    z = sample_noise(5, block_model)
    assert torch.equal(generator(z), first(generator[0](z)))

    path = tmp_path / "generator.pt"
    torch.save(generator.state_dict(), path)
    reloaded = load_generator(path, block_model, (1, 48, 48), first_stage=first_model)
    assert torch.equal(reloaded(z), generator.eval()(z))


# ---- the pipelines end to end, on tiny nets ----


def tiny_gan(section: dict, hidden: list[int], **model) -> None:
    section["model"].update(g_hidden=hidden, g_activations=section["model"]["g_activations"][-len(hidden):],
                            g_hidden_biases=section["model"]["g_hidden_biases"][-len(hidden):], d_units=[8], d_pieces=2, **model)
    section["train"].update(epochs=2, batches_per_epoch=2, grid_every=1)


def write_params(root: Path, raw: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def run_names(root: Path, experiment: str) -> list[str]:
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return sorted(run.info.run_name for run in runs)


def test_cifar10_pipeline_end_to_end(pipeline, empty_mlflow_store):
    root = pipeline.root
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    raw = read_yaml(root / "params.yaml")
    tiny_gan(raw["cifar10"]["fc"], [16, 16])
    conv_layer = {"channels": 2, "pieces": 2, "kernel": 8, "pad": 4, "pool": 4, "pool_stride": 2}
    tiny_gan(raw["cifar10"]["conv"], [8, 8000], d_conv=[conv_layer])
    for gan in ("fc", "conv"):
        raw["cifar10"][gan]["train"]["batch_size"] = 6
        raw["cifar10"][gan]["sample"]["n"] = 30
    write_params(root, raw)
    # The real download checks torchvision's md5s, which a fixture cannot have: prepare the fixture
    # with its own and let DVC record the stage as done.
    md5s = write_archive(root / "mirror")
    from advnets.data.cifar10 import prepare_cifar10

    prepare_cifar10(root / "data" / "cifar10", root / "mirror", expected_md5=md5s)
    pipeline.run("dvc", "commit", "-f", "pipelines/cifar10/dvc.yaml:download")
    pipeline.repro("pipelines/cifar10/dvc.yaml")

    lock = yaml.safe_load((root / "pipelines" / "cifar10" / "dvc.lock").read_text())["stages"]
    assert {"train@fc", "train@conv", "sample@fc", "sample@conv", "figures@fc", "figures@conv"} <= set(lock)
    assert lock["train@conv"]["params"]["params.yaml"]["cifar10.conv.train"]["batch_size"] == 6
    for gan in ("fc", "conv"):
        samples = np.load(root / "data" / "samples" / f"cifar10_{gan}.npy")
        assert samples.shape == (30, 3072)
        figure = root / "figures" / f"cifar10_{gan}" / "figure2.png"
        assert figure.stat().st_size > 1000
        record = json.loads((root / "models" / f"cifar10_{gan}" / "mlflow-run.json").read_text())
        run = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(record["run_id"])
        assert run.data.tags["DVC_STAGE"] == f"train@{gan}"
        data_dep = next(dep for dep in lock[f"train@{gan}"]["deps"] if dep["path"] == "data/cifar10")
        assert run.data.tags["dvc.md5.data/cifar10"] == data_dep["md5"]
        assert run.data.params[f"cifar10.{gan}.train.batch_size"] == "6"
        assert run.data.params[f"cifar10.{gan}.tracking.experiment"] == f"advnets-cifar10-{gan}"
        assert run.data.params["cifar10.data.mirror"] == "None" and "cifar10.data.train_size" not in run.data.params
        assert run.inputs.dataset_inputs[0].dataset.digest == data_dep["md5"]  # the data's md5 in dvc.lock
    assert run_names(root, "advnets-cifar10-conv") == ["cifar10_conv-seed0", "figures@conv", "sample@conv"]
    assert "Running stage" not in pipeline.repro("pipelines/cifar10/dvc.yaml")
    lineage = pipeline.run("advnets", "lineage", "--pipeline", "pipelines/cifar10").stdout
    assert "OK: the files, dvc.lock and MLflow agree" in lineage
    assert "models/cifar10_conv/generator.pt" in lineage and "train@conv" in lineage
    assert not (root / "data" / "mnist").exists()  # the MNIST pipeline did not run


def test_tfd_pipeline_end_to_end_and_a_missing_file_says_how_to_get_it(pipeline, empty_mlflow_store):
    root = pipeline.root
    shutil.copy(empty_mlflow_store, root / "mlflow.db")
    raw = read_yaml(root / "params.yaml")
    raw["tfd"]["data"]["mat_path"] = "private/TFD_48x48.mat"
    tiny_gan(raw["tfd"]["pretrain"], [16, 120], g_output_sparse=10)
    tiny_gan(raw["tfd"], [16])
    for section in (raw["tfd"]["pretrain"], raw["tfd"]):
        section["train"].update(batch_size=10, monitor_samples=10)
    raw["tfd"]["sample"]["n"] = 40
    write_params(root, raw)

    missing = pipeline.run_unchecked("dvc", "repro", "pipelines/tfd/dvc.yaml")
    assert missing.returncode != 0
    assert "TFD is licensed and not publicly downloadable" in missing.stdout + missing.stderr

    (root / "private").mkdir()
    write_mat(root / "private" / "TFD_48x48.mat", **fixture_fields(200))
    pipeline.repro("pipelines/tfd/dvc.yaml")
    parzen = json.loads((root / "metrics" / "tfd" / "parzen.json").read_text())
    assert parzen["n_folds"] == 5 and parzen["n_samples"] == 40
    fold_means = torch.tensor([fold["test_ll_mean"] for fold in parzen["folds"]], dtype=torch.float64)
    assert parzen["test_ll_mean"] == pytest.approx(fold_means.mean().item())
    assert parzen["test_ll_se"] == pytest.approx((fold_means.std(correction=0) / 5**0.5).item())
    assert (root / "figures" / "tfd" / "figure2.png").stat().st_size > 1000
    record = json.loads((root / "models" / "tfd" / "mlflow-run.json").read_text())
    run = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_run(record["run_id"])
    first = root / "models" / "tfd_pretrain" / "generator.pt"
    from advnets.atomic import md5_of

    assert run.data.params["tfd.pretrained_md5"] == md5_of(first)
    assert (run.data.params["tfd.data.fold"], run.data.params["tfd.data.mat_path"]) == ("0", "private/TFD_48x48.mat")
    assert run.data.metrics["parzen.test_ll_mean"] == pytest.approx(parzen["test_ll_mean"])
    assert run_names(root, "advnets-tfd") == ["figures", "parzen", "sample", "tfd-seed0", "tfd_pretrain-seed0"]

    assert "OK: the files, dvc.lock and MLflow agree" in pipeline.run("advnets", "lineage", "--pipeline", "pipelines/tfd").stdout
    raw["tfd"]["parzen"]["folds"] = [0, 1]
    write_params(root, raw)
    stale = pipeline.run_unchecked("advnets", "lineage", "--pipeline", "pipelines/tfd")
    assert stale.returncode == 1
    assert "params.yaml: tfd.parzen.folds is [0, 1] but stage parzen ran with [0, 1, 2, 3, 4]" in stale.stdout


def fixture_fields(n: int) -> dict:
    """n varied faces: random pixels, fold f gives image i the role (i + f) % 4."""
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        "folds": np.array([[(i + f) % 4 for f in range(5)] for i in range(n)], dtype=np.uint8),
        "labs_ex": np.full((n, 1), -1, dtype=np.int16),
        "labs_id": np.zeros((n, 1), dtype=np.int32),
    }


def test_the_root_pipeline_is_mnist_only():
    root = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert not any("cifar10" in json.dumps(stage) or "tfd" in json.dumps(stage) for stage in root.values())
