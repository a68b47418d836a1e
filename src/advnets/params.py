"""params.yaml, the single source of parameters, loaded into typed and validated objects.

Every key is required (params.yaml holds the defaults, which reproduce the paper); unknown keys,
wrong types and out-of-range values are refused before any work, naming the full key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from advnets.errors import AdvnetsError

MNIST_TRAIN_IMAGES = 60_000
MNIST_TEST_IMAGES = 10_000


class ParamsError(AdvnetsError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names every bad key."""


class _Section(BaseModel):
    # strict: a YAML string "5" is not an int; extra: a misspelt key is refused, not ignored.
    # allow_inf_nan: .inf or .nan pass every bound (lr: .inf > 0) and would fail only after compute.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    def flat_under(self, prefix: str, *sections: str) -> dict[str, Any]:
        """Dotted keys of these subsections under `prefix`: {'cifar10.fc.train.lr': 0.025, ...}."""
        return {f"{prefix}.{key}": value for key, value in _flat(self.model_dump(), sections).items()}


class DataParams(_Section):
    mirror: str | None = Field(
        description="Local folder with the four MNIST .gz files; ADVNETS_MNIST_MIRROR overrides it."
    )
    train_size: int = Field(gt=0, description="Training split: the first N official training images.")
    valid_size: int = Field(gt=0, description="Validation split: the last N official training images.")

    @model_validator(mode="after")
    def _splits_fit(self) -> DataParams:
        if self.train_size + self.valid_size > MNIST_TRAIN_IMAGES:
            raise ValueError(
                f"train_size + valid_size must be <= {MNIST_TRAIN_IMAGES}, "
                f"got {self.train_size} + {self.valid_size}"
            )
        return self


PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(gt=0, le=1)]


class NetSizes(_Section):
    """Layer sizes and init ranges, shared by the MNIST nets and the 1-D toy's."""

    g_hidden: list[PositiveInt] = Field(min_length=1)
    g_init_range: float = Field(gt=0)
    d_units: list[PositiveInt] = Field(min_length=1)
    d_pieces: PositiveInt
    d_init_range: float = Field(gt=0)


class ModelParams(NetSizes):
    noise: Literal["uniform", "gaussian"]
    noise_dim: PositiveInt
    d_keep_input: Probability
    d_keep_hidden: Probability


class StepParams(_Section):
    """How the nets step: the update rule, losses, optimizer and its schedules, the epochs."""

    update: Literal["simultaneous", "alternating"]
    k: PositiveInt
    g_loss: Literal["non_saturating", "minimax"]
    d_loss_scale: float = Field(gt=0)
    batch_size: PositiveInt
    lr: float = Field(gt=0)
    lr_decay: float = Field(ge=1)
    lr_min: float = Field(ge=0)
    # > 0: torch's SGD keeps no momentum buffer at momentum 0, which would break classical
    # momentum once the ramp leaves 0 (and a CUDA graph captured at such a step).
    momentum_start: float = Field(gt=0, lt=1)
    momentum_end: float = Field(gt=0, lt=1)
    momentum_ramp_epochs: PositiveInt
    epochs: PositiveInt
    batches_per_epoch: PositiveInt | None
    seed: int = Field(ge=0)
    device: Literal["auto", "cpu", "cuda"]
    grid_every: PositiveInt

    @field_validator("lr_min")
    @classmethod
    def _floor_below_start(cls, lr_min: float, info: ValidationInfo) -> float:
        lr = info.data.get("lr")  # validated before lr_min (declared first); absent if it was refused
        if lr is not None and lr_min > lr:
            raise ValueError(f"must be <= lr (the floor of the decay), got {lr_min} > {lr}")
        return lr_min


class TrainParams(StepParams):
    """StepParams and the official per-epoch validation Parzen monitor (data in [0, 1] only)."""

    monitor_samples: PositiveInt
    monitor_sigma: float = Field(gt=0)


class SelectParams(_Section):
    every: PositiveInt
    samples: PositiveInt
    valid_points: PositiveInt


class SampleParams(_Section):
    n: PositiveInt
    seed: int = Field(ge=0)


class ParzenParams(_Section):
    sigmas: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    valid_points: PositiveInt
    test_points: Annotated[int, Field(gt=0, le=MNIST_TEST_IMAGES)] | None  # more would be scored on 10,000, logged as asked
    baseline_samples: PositiveInt
    chunk_size: PositiveInt
    device: Literal["auto", "cpu", "cuda"]


class Figure2Params(_Section):
    seed: int = Field(ge=0)
    sample_rows: PositiveInt
    sample_cols: PositiveInt
    scale: PositiveInt


class FiguresParams(Figure2Params):
    interp_rows: PositiveInt
    interp_frames: int = Field(ge=2)


class ToyParams(NetSizes):
    data_mean: float = Field(gt=0, lt=1)
    data_std: float = Field(gt=0)
    k: PositiveInt
    lr: float = Field(gt=0)
    batch_size: PositiveInt
    g_steps: PositiveInt
    panel_steps: list[Annotated[int, Field(ge=0)]] = Field(min_length=4, max_length=4)
    log_every: PositiveInt
    d_star_steps: PositiveInt
    d_star_lr: float = Field(gt=0)
    d_star_init_range: float = Field(gt=0)
    seed: int = Field(ge=0)

    @model_validator(mode="after")
    def _panels_in_run(self) -> ToyParams:
        if max(self.panel_steps) > self.g_steps or sorted(self.panel_steps) != self.panel_steps:
            raise ValueError(f"panel_steps must be increasing and <= g_steps ({self.g_steps}), got {self.panel_steps}")
        return self


class TrackingParams(_Section):
    experiment: str = Field(min_length=1)


# ---- the paper's other datasets (docs/fidelity.md, "Other datasets"): one section each ----


class ConvMaxoutParams(_Section):
    """One convolutional maxout layer of D: `channels` units of `pieces` feature maps each, then
    max pooling."""

    channels: PositiveInt
    pieces: PositiveInt
    kernel: PositiveInt
    pad: int = Field(ge=0)
    pool: PositiveInt
    pool_stride: PositiveInt


class DeconvParams(_Section):
    """G's last hidden layer seen as `channels` maps of side x side, then a transposed
    convolution to the image (untied bias, linear output)."""

    channels: PositiveInt
    side: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt


class DatasetModelParams(ModelParams):
    """MNIST's model keys, plus what the other datasets' nets change."""

    g_activations: list[Literal["relu", "sigmoid"]] = Field(description="One per g_hidden layer.")
    g_hidden_biases: list[float] = Field(description="Initial bias of each g_hidden layer.")
    g_output: Literal["sigmoid", "linear"]
    g_output_init_range: float | None = Field(gt=0, description="The output layer's weights ~ U(-r, r) ...")
    g_output_sparse: PositiveInt | None = Field(description="... or N non-zero N(0, 1) weights per unit.")
    g_output_bias: float | Literal["data_mean"] = Field(description="A constant, or logit(pixel means).")
    max_col_norm: float | None = Field(gt=0, description="Cap on every unit's incoming weight norm.")
    deconv: DeconvParams | None = Field(description="A transposed-convolution output layer instead.")
    d_conv: list[ConvMaxoutParams] = Field(description="Convolutional maxout layers before d_units.")

    @model_validator(mode="after")
    def _layers_agree(self) -> DatasetModelParams:
        if not len(self.g_hidden) == len(self.g_activations) == len(self.g_hidden_biases):
            raise ValueError(
                f"g_hidden, g_activations and g_hidden_biases must have one entry per hidden layer, "
                f"got {len(self.g_hidden)}, {len(self.g_activations)} and {len(self.g_hidden_biases)}"
            )
        if self.deconv is not None and self.deconv.channels * self.deconv.side**2 != self.g_hidden[-1]:
            raise ValueError(
                f"deconv.channels * deconv.side^2 must equal the last g_hidden size {self.g_hidden[-1]}, "
                f"got {self.deconv.channels} * {self.deconv.side}^2"
            )
        if (self.g_output_init_range is None) == (self.g_output_sparse is None):
            raise ValueError("set exactly one of g_output_init_range and g_output_sparse (the other null)")
        if self.g_output_sparse is not None and self.g_output_sparse > self.g_hidden[-1]:
            raise ValueError(f"g_output_sparse must be <= the last g_hidden size {self.g_hidden[-1]}, got {self.g_output_sparse}")
        if self.deconv is not None and (self.g_output != "linear" or self.g_output_sparse is not None):
            raise ValueError("a deconv output layer is linear with a uniform init: g_output linear, g_output_sparse null")
        if self.g_output_bias == "data_mean" and self.g_output != "sigmoid":
            raise ValueError("g_output_bias data_mean (logit of pixel means) needs g_output sigmoid")
        return self


class GanParams(_Section):
    """One GAN of one dataset: what MNIST's top-level sections hold, for another dataset."""

    model: DatasetModelParams
    train: StepParams
    sample: SampleParams
    figures: Figure2Params
    tracking: TrackingParams


class Cifar10DataParams(_Section):
    mirror: str | None = Field(
        description="Local folder with cifar-10-python.tar.gz; ADVNETS_CIFAR10_MIRROR overrides it."
    )


class Cifar10Params(_Section):
    data: Cifar10DataParams
    fc: GanParams    # Figure 2 c: fully connected nets
    conv: GanParams  # Figure 2 d: convolutional D, "deconvolutional" G


class TfdDataParams(_Section):
    mat_path: str = Field(min_length=1, description="The user's TFD_48x48.mat (TFD is licensed).")
    fold: int = Field(ge=0, le=4, description="Whose unlabeled images train G (the official code: 0).")


class TfdPretrainParams(_Section):
    model: DatasetModelParams
    train: TrainParams


class TfdParzenParams(_Section):
    sigmas: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    folds: list[Annotated[int, Field(ge=0, le=4)]] = Field(min_length=1)
    chunk_size: PositiveInt
    device: Literal["auto", "cpu", "cuda"]


class TfdParams(GanParams):
    """TFD's two stages: `pretrain` trains G with a D; then `model` puts a new block in front of the
    pretrained G and trains it with a fresh D."""

    data: TfdDataParams
    pretrain: TfdPretrainParams
    train: TrainParams
    parzen: TfdParzenParams

    @model_validator(mode="after")
    def _block_feeds_pretrained(self) -> TfdParams:
        if self.model.g_output != "sigmoid" or self.model.deconv is not None or self.model.g_output_bias == "data_mean":
            raise ValueError(
                "model: the new block's output (the pretrained G's noise) must be g_output sigmoid, "
                "no deconv, and a constant g_output_bias"
            )
        return self


class Params(_Section):
    data: DataParams
    model: ModelParams
    train: TrainParams
    select: SelectParams
    sample: SampleParams
    parzen: ParzenParams
    figures: FiguresParams
    toy: ToyParams
    tracking: TrackingParams
    cifar10: Cifar10Params
    tfd: TfdParams

    @model_validator(mode="after")
    def _sizes_fit(self) -> Params:
        full_epoch = self.data.train_size // self.train.batch_size
        if full_epoch == 0:
            raise ValueError(
                f"train.batch_size must be <= data.train_size, "
                f"got {self.train.batch_size} > {self.data.train_size}"
            )
        if self.parzen.valid_points > self.data.valid_size:
            raise ValueError(
                f"parzen.valid_points must be <= data.valid_size, "
                f"got {self.parzen.valid_points} > {self.data.valid_size}"
            )
        selection_points = self.parzen.valid_points + self.select.valid_points
        if selection_points > self.data.valid_size:
            raise ValueError(
                f"parzen.valid_points + select.valid_points must be <= data.valid_size (selection "
                f"never scores the images that choose sigma), got {self.parzen.valid_points} + "
                f"{self.select.valid_points} > {self.data.valid_size}"
            )
        if self.parzen.baseline_samples > self.data.train_size:
            raise ValueError(
                f"parzen.baseline_samples must be <= data.train_size, "
                f"got {self.parzen.baseline_samples} > {self.data.train_size}"
            )
        if self.train.update == "alternating" and self.batches_per_epoch < self.train.k:
            raise ValueError(
                f"an epoch must hold at least train.k = {self.train.k} batches for a G step, "
                f"got {self.batches_per_epoch}"
            )
        if (self.train.batches_per_epoch or 0) > full_epoch:
            raise ValueError(
                f"train.batches_per_epoch must be <= data.train_size // train.batch_size = "
                f"{full_epoch}, got {self.train.batches_per_epoch}"
            )
        return self

    @property
    def batches_per_epoch(self) -> int:
        """MNIST training steps per epoch: train.batches_per_epoch, else a pass over the split."""
        return self.train.batches_per_epoch or self.data.train_size // self.train.batch_size

    def flat(self, *sections: str) -> dict[str, Any]:
        """Dotted keys, as `dvc params diff` names them: {'train.lr': 0.1, ...}."""
        return _flat(self.model_dump(), sections)

    def gan(self, name: str) -> GanParams | TfdPretrainParams:
        """A GAN section of another dataset by its dotted name (GANS)."""
        if name not in GANS:
            raise ParamsError(f"no GAN section {name!r} in params; one of: {', '.join(GANS)}")
        section: Any = self
        for part in name.split("."):
            section = getattr(section, part)
        return section


GANS = ("cifar10.fc", "cifar10.conv", "tfd.pretrain", "tfd")

# Keys that change no result, under any prefix (cifar10.fc.train.device): where it ran, how often it
# logged, where the data came from.
NEUTRAL_KEYS = {"train.device", "train.grid_every", "data.mirror", "parzen.chunk_size", "parzen.device"}


def unprefixed(key: str) -> str:
    """A flat key without the dataset's prefix: cifar10.fc.train.epochs -> train.epochs."""
    return ".".join(key.split(".")[-2:])


def changes_results(key: str) -> bool:
    return unprefixed(key) not in NEUTRAL_KEYS


def _flat(dumped: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section in sections or dumped
        for key, value in dumped[section].items()
    }


def _key(error: dict[str, Any], raw: Any) -> str:
    """The dotted key an error is about, as the file spells it: pydantic's location also names the
    member of a union it tried (`float`, `literal['data_mean']`), which the file has no key for."""
    parts, node = [], raw
    for i, part in enumerate(error["loc"]):
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if found:
            parts.append(str(part))
            node = node[part]
        elif i == len(error["loc"]) - 1 and error["type"] == "missing":
            parts.append(str(part))
    return ".".join(parts) or "params"


def _describe(error: dict[str, Any], raw: Any = None) -> str:
    key = _key(error, raw)
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: missing"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if error["type"] == "value_error":  # a model validator: its message already quotes values
        return f"{key}: {message}"
    return f"{key}: {message}, got {error['input']!r}"


def validate(raw: Any, source: str = "params") -> Params:
    """Validate a parsed params mapping, raising ParamsError that lists every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(dict.fromkeys(_describe(error, raw) for error in exc.errors()))
        raise ParamsError(f"invalid {source}:\n  {problems}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last
    silently: `lr: 0.1` then `lr: 0.01` would train at 0.01 with nothing said)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (first at line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The raw mapping in a params file (no validation)."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {type(raw).__name__}")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    return validate(read_yaml(path), source=str(path))


def param_strings(flat: dict[str, Any]) -> dict[str, str]:
    """Param values as MLflow stores them (lists as JSON, like the YAML)."""
    return {key: json.dumps(value) if isinstance(value, list) else str(value) for key, value in flat.items()}
