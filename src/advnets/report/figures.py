"""The paper's figures, rendered from our runs as PNG files (byte-stable for the same inputs).

Figure 1: the 1-D GAN's four panels. Figure 2: fair random samples with, in a separate framed
column, the training image nearest to each row's last sample. Figure 3: straight-line
interpolation in z space. Plus the training curves, the Parzen sigma sweep and the validation
curves of every variant in the MLflow store.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image

from advnets.atomic import atomic_path
from advnets.gan.nets import Generator, sample_noise
from advnets.gan.sampling import for_display
from advnets.params import ModelParams

SEPARATOR = 12  # pixels between the samples and the nearest-neighbour column (before scaling)
FRAME_RGB = (1.0, 0.8, 0.0)  # the paper outlines the nearest neighbours in yellow


def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor, chunk: int = 10_000) -> torch.Tensor:
    """Index in pool of the nearest row (squared Euclidean distance) to each query, by direct
    differences (exact; the GEMM expansion is not needed for a handful of queries)."""
    best_dist = torch.full((len(queries),), math.inf, dtype=torch.float64)
    best_index = torch.zeros(len(queries), dtype=torch.long)
    for start in range(0, len(pool), chunk):
        block = pool[start : start + chunk].double()
        dist = torch.stack([((block - q.double()) ** 2).sum(dim=1) for q in queries])
        value, index = dist.min(dim=1)
        better = value < best_dist
        best_dist[better], best_index[better] = value[better], index[better] + start
    return best_index


def _images(flat: torch.Tensor, image_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """[N, C, H, W] from flat (channel, row, col) vectors; image_shape None: square grey."""
    if image_shape is None:
        side = math.isqrt(flat.shape[1])
        image_shape = (1, side, side)
    return flat.view(-1, *image_shape)


def _save_png(path: str | Path, image: torch.Tensor, scale: int) -> None:
    """Save a [C, H, W] image in [0, 1], each pixel drawn as a scale x scale block."""
    big = image.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    with atomic_path(path) as tmp:
        save_image(big, tmp, format="png")


@torch.no_grad()
def figure2(
    path: str | Path,
    generator: Generator,
    model: ModelParams,
    train_images: torch.Tensor,
    rows: int,
    cols: int,
    seed: int,
    scale: int,
    image_shape: tuple[int, int, int] | None = None,
    display: str = "unit",
) -> torch.Tensor:
    """rows x cols fair samples plus the nearest training image to each row's last sample, searched
    on the raw flat vectors; image_shape (C, H, W) (None: square grey) and display (see for_display)
    only change how images are drawn. Returns the nearest neighbours' indices in train_images."""
    samples = generator.eval()(sample_noise(rows * cols, model, generator=torch.Generator().manual_seed(seed)))
    shown = for_display(samples, display)
    last_of_row = samples.view(rows, cols, -1)[:, -1]
    nearest = nearest_neighbours(last_of_row, train_images)
    left = make_grid(_images(shown, image_shape), nrow=cols, padding=2, pad_value=1.0)
    neighbours = for_display(train_images[nearest], display)
    right = make_grid(_images(neighbours, image_shape), nrow=1, padding=2, pad_value=1.0)
    frame = torch.tensor(FRAME_RGB).view(3, 1, 1)
    right = torch.nn.functional.pad(right, (2, 2, 2, 2), value=0.0)
    right[:, :2, :], right[:, -2:, :], right[:, :, :2], right[:, :, -2:] = frame, frame, frame, frame
    height = max(left.shape[1], right.shape[1])
    left = torch.nn.functional.pad(left, (0, 0, 0, height - left.shape[1]), value=1.0)
    right = torch.nn.functional.pad(right, (0, 0, 0, height - right.shape[1]), value=1.0)
    gap = torch.ones(3, height, SEPARATOR)
    _save_png(path, torch.cat([left, gap, right], dim=2), scale)
    return nearest


@torch.no_grad()
def interpolation(generator: Generator, model: ModelParams, rows: int, frames: int, seed: int) -> torch.Tensor:
    """[rows, frames, data_dim]: G on the straight line from z0 to z1, endpoints included."""
    rng = torch.Generator().manual_seed(seed)
    z0, z1 = sample_noise(rows, model, generator=rng), sample_noise(rows, model, generator=rng)
    t = torch.linspace(0, 1, frames).view(1, frames, 1)
    z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)
    return generator.eval()(z.view(rows * frames, -1)).view(rows, frames, -1)


def figure3(
    path: str | Path,
    frames_grid: torch.Tensor,
    scale: int,
    image_shape: tuple[int, int, int] | None = None,
    display: str = "unit",
) -> None:
    rows, frames, _ = frames_grid.shape
    shown = for_display(frames_grid.reshape(rows * frames, -1), display)
    grid = make_grid(_images(shown, image_shape), nrow=frames, padding=2, pad_value=1.0)
    _save_png(path, grid, scale)


# ---- matplotlib figures (imported lazily: the package does not need matplotlib to load) ----


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)


def _save_matplotlib(fig, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    _pyplot().close(fig)


def _read_csv(path: str | Path) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def training_curves(path: str | Path, curve_csv: str | Path) -> None:
    data = _read_csv(curve_csv)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    epoch = data["epoch"]
    axes[0].plot(epoch, data["d_loss"], label="D loss")
    axes[0].plot(epoch, data["g_loss"], label="G loss")
    axes[0].set_title("losses")
    axes[1].plot(epoch, data["d_real"], label="mean D(x)")
    axes[1].plot(epoch, data["d_fake"], label="mean D(G(z))")
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[1].set_title("discriminator outputs")
    axes[2].plot(epoch, data["valid_parzen"], color="tab:green", label="validation Parzen LL")
    axes[2].set_title("monitor: 100 samples, σ = 0.2")
    for ax in axes:
        _label_axes(ax, "epoch", "", ax.get_title())
    _save_matplotlib(fig, path)


def sigma_sweep(path: str | Path, sweep_csv: str | Path, chosen_sigma: float) -> None:
    data = _read_csv(sweep_csv)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(data["sigma"], data["valid_ll"], "o-", label="GAN samples")
    ax.plot(data["sigma"], data["valid_ll_real_images"], "s--", label="real training images")
    ax.axvline(chosen_sigma, color="grey", lw=0.8, ls=":", label=f"chosen σ = {chosen_sigma:.4f}")
    ax.set_xscale("log")
    _label_axes(ax, "σ", "mean validation log-likelihood (nats)", "Parzen window: σ chosen on validation")
    _save_matplotlib(fig, path)


def figure1(path: str | Path, x: torch.Tensor, p_data: torch.Tensor, snapshots: list) -> None:
    """Four panels drawn like the paper: p_data black dots, p_g green, D blue dashed, and the z
    line below with arrows x = G(z)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(snapshots), figsize=(4 * len(snapshots), 3.6), sharey=True)
    top = 1.15 * max(p_data.max().item(), *(s.p_g.max().item() for s in snapshots))
    for ax, snap, letter in zip(axes, snapshots, "abcd"):
        ax.plot(x, p_data, "k:", lw=2, label="$p_{data}$")
        ax.plot(x, snap.p_g, "g-", lw=1.8, label="$p_g$")
        ax.plot(x, snap.d * top, "b--", lw=1.5, label="D (top of the panel = 1)")
        z_level, x_level = -0.35 * top, -0.05 * top
        z_pos = 0.5 + snap.z / (2 * math.sqrt(3)) * 0.9  # the z domain drawn as a line below
        ax.hlines([z_level, x_level], 0, 1, color="k", lw=0.8)
        for zp, gx in zip(z_pos.tolist(), snap.g_of_z.tolist()):
            ax.annotate("", xy=(gx, x_level), xytext=(zp, z_level), arrowprops={"arrowstyle": "->", "lw": 0.7})
        ax.text(0.01, z_level - 0.08 * top, "z", fontsize=10)
        ax.text(0.01, x_level + 0.03 * top, "x", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(z_level - 0.15 * top, top)
        ax.set_yticks([])
        ax.set_title(f"({letter}) after {snap.step} G steps")
    axes[0].legend(frameon=False, loc="upper left", fontsize=8)
    _save_matplotlib(fig, path)


def jsd_curve(path: str | Path, curve: list[dict[str, float]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [row["step"] for row in curve]
    ax.plot(steps, [row["jsd"] for row in curve], label="JSD($p_{data}$ ‖ $p_g$)")
    ax.plot(steps, [(row["value_d_star"] + math.log(4)) / 2 for row in curve], "--", label="(C(G) + log 4) / 2")
    _label_axes(ax, "G steps", "nats", "1-D GAN: divergence over training (the curves coincide)")
    _save_matplotlib(fig, path)


def variant_label(row: dict[str, Any]) -> str:
    """A variant's legend entry: its changes and seeds, and how many seeds' curves lie wholly below
    the chart (below 0: runs that D won, say)."""
    label = ", ".join(f"{k}={v}" for k, v in row["changes"].items()) or "the paper's configuration"
    label += f" ({row['n_seeds']} seed{'s' if row['n_seeds'] > 1 else ''})"
    bests = [max(value for _, value in seed["valid_curve"]) for seed in row["seeds"] if seed.get("valid_curve")]
    below = [best for best in bests if best < 0]
    if below and len(below) == row["n_seeds"]:
        label += f": below 0 throughout (best {max(below):.0f}), off the chart"
    elif below:
        label += f": {len(below)} of them below 0 throughout, off the chart"
    return label


def variant_curves(
    path: str | Path, table: list[dict[str, Any]], paper: tuple[float, float], spent: dict[int, float]
) -> None:
    """Every variant's validation score by epoch (`advnets variants`: one line per seed), beside
    the paper's test figure; the top axis, if `spent` is given, the share of the learning rate's
    sum over all steps taken by each of its epochs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    colours = plt.get_cmap("tab10").colors
    top = paper[0] + paper[1]
    for i, row in enumerate(table):
        label = variant_label(row)
        for j, seed in enumerate(row["seeds"]):
            epochs, values = zip(*seed["valid_curve"]) if seed.get("valid_curve") else ((), ())
            style = {"marker": "o"} if len(epochs) == 1 else {}  # a run scored once is a point
            ax.plot(epochs, values, color=colours[i % len(colours)], lw=1.2, label=label if j == 0 else None, **style)
            top = max([top, *values])
    ax.axhspan(paper[0] - paper[1], paper[0] + paper[1], color="grey", alpha=0.25, lw=0)
    ax.axhline(paper[0], color="k", lw=0.8, ls="--", label=f"paper: {paper[0]:g} ± {paper[1]:g} (test set)")
    ax.set_ylim(0, top + 10)  # below 0, early epochs and collapsed runs, is off the chart
    ax.set_xlim(left=0)
    if spent:
        shares = ax.secondary_xaxis("top")
        shares.set_xticks(list(spent), [f"{share:.0%}" for share in spent.values()])
        shares.set_xlabel("share of the learning rate's sum taken by that epoch (params.yaml's schedule)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Parzen log-likelihood (nats)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title("MNIST, every variant in the MLflow store: the selection's validation score by epoch")
    _save_matplotlib(fig, path)
