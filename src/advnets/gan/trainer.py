"""One GAN training run in memory: nets, optimizers, the epoch loop, its figures and its state.

Per-step figures stay on the device and are read once per epoch (plus a progress-bar refresh every
`REFRESH_EVERY` steps), so a GPU is never synchronised with the host every step.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

import torch
from tqdm import tqdm

from advnets.errors import AdvnetsError
from advnets.gan.cuda_graph import GraphedSimultaneousStep
from advnets.gan.nets import Discriminator, Generator, output_bias_from_data, sample_noise
from advnets.gan.schedule import learning_rate, momentum
from advnets.gan.updates import Nets, discriminator_step, generator_step, simultaneous_step
from advnets.params import TrainParams
from advnets.parzen import log_likelihood

REFRESH_EVERY = 50
GRID_SIZE = 100  # a 10 x 10 sample grid


class NonFiniteError(AdvnetsError):
    """A loss or a weight became NaN or Inf."""


class Trainer:
    """params: anything with .model and .train (MNIST's Params, or one GAN section of another
    dataset). The per-epoch validation Parzen monitor runs when params.train has its keys and
    validation images are given; image_shape is for convolutional nets; pretrained is TFD's
    first-stage G, which the new G stacks on."""

    def __init__(
        self,
        params,
        train_images: torch.Tensor,
        valid_images: torch.Tensor | None,
        device: torch.device,
        image_shape: tuple[int, int, int] | None = None,
        pretrained: Generator | None = None,
    ):
        self.params, self.device = params, device
        # The trainer owns its random stream (init, permutations, noise, dropout masks): it is
        # swapped in around each use, so two trainers never disturb each other and a checkpoint
        # holds everything a bit-identical resume needs.
        with self._forked_rng():
            torch.manual_seed(params.train.seed)
            self.nets = Nets.create(params.model, params.train, train_images.shape[1], image_shape, pretrained)
            self._save_rng()
        if pretrained is None and output_bias_from_data(params.model):
            self.nets.generator.set_output_bias_to_data_mean(train_images)
        self.nets.generator.to(device).train()  # moves the parameters in place: the optimizers follow
        self.nets.discriminator.to(device).train()
        self.train_images = train_images.to(device)
        monitored = isinstance(params.train, TrainParams) and valid_images is not None
        self.valid_images = valid_images.to(device) if monitored else None
        # Fixed noise, from its own generator, so the monitor and the grids compare like with like
        # across epochs and never disturb the training random stream.
        fixed = torch.Generator().manual_seed(params.train.seed)
        if monitored:
            self.monitor_z = sample_noise(params.train.monitor_samples, params.model, generator=fixed).to(device)
        self.grid_z = sample_noise(GRID_SIZE, params.model, generator=fixed).to(device)
        self.epoch = 0  # completed epochs
        self._choose_step()

    def _choose_step(self) -> None:
        """The simultaneous step replays a CUDA graph on a GPU (advnets.gan.cuda_graph) for the nets its
        GPU tests cover (MNIST's: a fully connected D, no norm cap), else runs eagerly."""
        self.simultaneous_step = functools.partial(simultaneous_step, self.nets)
        graphable = isinstance(self.nets.discriminator, Discriminator) and self.nets.norm_cap is None
        if self.device.type == "cuda" and self.params.train.update == "simultaneous" and graphable:
            batch = (self.params.train.batch_size, self.train_images.shape[1])
            self.simultaneous_step = GraphedSimultaneousStep(self.nets, batch, self.device)

    @property
    def batches_per_epoch(self) -> int:
        full = len(self.train_images) // self.params.train.batch_size
        return self.params.train.batches_per_epoch or full

    def _forked_rng(self) -> contextlib.AbstractContextManager:
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _save_rng(self) -> None:
        self.rng_state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            self.rng_state["cuda"] = torch.cuda.get_rng_state(self.device)

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        with self._forked_rng():
            torch.set_rng_state(self.rng_state["cpu"])
            if "cuda" in self.rng_state:
                torch.cuda.set_rng_state(self.rng_state["cuda"], self.device)
            yield
            self._save_rng()

    def train_epoch(self) -> dict[str, float]:
        """Run one epoch; return its row of figures (epoch counts from 1)."""
        with self._own_rng():
            return self._train_epoch()

    def _train_epoch(self) -> dict[str, float]:
        train, nets = self.params.train, self.nets
        n_batches, size = self.batches_per_epoch, train.batch_size
        order = torch.randperm(len(self.train_images), device=self.device)[: n_batches * size]
        d_figures = torch.empty(n_batches, 3, device=self.device)  # loss, D(x), D(G(z))
        g_losses = torch.empty(n_batches // (1 if train.update == "simultaneous" else train.k), device=self.device)

        start = time.perf_counter()
        bar = tqdm(range(n_batches), desc=f"epoch {self.epoch + 1}/{train.epochs}", leave=False)
        g_done = 0
        for b in bar:
            x = self.train_images[order[b * size : (b + 1) * size]]
            if train.update == "simultaneous":
                d_stats, g_losses[b] = self.simultaneous_step(x, self.epoch)
                g_done += 1
            else:
                d_stats = discriminator_step(nets, x, self.epoch)
                if (b + 1) % train.k == 0:
                    g_losses[g_done] = generator_step(nets, size, self.device, self.epoch)
                    g_done += 1
            d_figures[b] = torch.stack([d_stats.loss, d_stats.real, d_stats.fake])
            if (b + 1) % REFRESH_EVERY == 0:
                bar.set_postfix(d_loss=f"{d_figures[b, 0].item():.3f}", g_loss=f"{g_losses[g_done - 1].item():.3f}")
        bar.close()

        self._check_finite(d_figures[:, 0], g_losses[:g_done])
        d_means = d_figures.mean(dim=0).tolist()
        seconds = time.perf_counter() - start
        self.epoch += 1
        row = {
            "epoch": self.epoch,
            "d_loss": d_means[0],
            "g_loss": g_losses[:g_done].mean().item(),
            "d_real": d_means[1],
            "d_fake": d_means[2],
            "valid_parzen": self.monitor() if self.valid_images is not None else None,
            "lr": learning_rate(train, nets.opt_d.steps_done - 1),
            "momentum": momentum(train, self.epoch - 1),
            "seconds": seconds,
            "images_per_s": n_batches * size / seconds,
        }
        return {key: value for key, value in row.items() if value is not None}

    def _check_finite(self, d_losses: torch.Tensor, g_losses: torch.Tensor) -> None:
        train = self.params.train
        bad_d = (~torch.isfinite(d_losses)).nonzero()
        bad_g = (~torch.isfinite(g_losses)).nonzero()
        first = []
        if len(bad_d):
            first.append(int(bad_d[0]) + 1)
        if len(bad_g):
            per_g = 1 if train.update == "simultaneous" else train.k
            first.append((int(bad_g[0]) + 1) * per_g)
        weights_ok = all(torch.isfinite(p).all() for p in self.parameters())
        if first or not weights_ok:
            where = f"step {min(first)} of" if first else "the weights after"
            step = self.epoch * self.batches_per_epoch + (min(first) if first else self.batches_per_epoch)
            raise NonFiniteError(
                f"NaN or Inf in a loss or weight at {where} epoch {self.epoch + 1} (global step "
                f"{step}); training stopped (the checkpoint of the last finished epoch is kept, if it finished one)"
            )

    def parameters(self):
        yield from self.nets.generator.parameters()
        yield from self.nets.discriminator.parameters()

    @torch.no_grad()
    def monitor(self) -> float:
        """The official code's monitor: validation Parzen log-likelihood of a few samples."""
        samples = self.nets.generator(self.monitor_z)
        return log_likelihood(self.valid_images, samples, self.params.train.monitor_sigma).mean().item()

    @torch.no_grad()
    def grid_samples(self) -> torch.Tensor:
        return self.nets.generator(self.grid_z).cpu()

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "generator": self.nets.generator.state_dict(),
            "discriminator": self.nets.discriminator.state_dict(),
            "opt_g": self.nets.opt_g.state_dict(),
            "opt_d": self.nets.opt_d.state_dict(),
            "rng": self.rng_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.nets.generator.load_state_dict(state["generator"])
        self.nets.discriminator.load_state_dict(state["discriminator"])
        self.nets.opt_g.load_state_dict(state["opt_g"])
        self.nets.opt_d.load_state_dict(state["opt_d"])
        self.rng_state = state["rng"]
        self._choose_step()  # a graph captured before would point at the replaced optimizer state

