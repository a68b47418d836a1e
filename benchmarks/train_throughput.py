"""Training throughput of the paper's MNIST nets: our step beside a plain PyTorch loop.

Prints steps/s and images/s of advnets' simultaneous update and of a plain PyTorch loop of the
same nets and update (BCE on sigmoid outputs, backward() on each loss, torch SGD), measured in the
same run, with the machine's fp32 GEMM rate and the GEMM bound it implies for one step.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--steps 200] [--side-by-side 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue as queue_module
import time

import torch
import torch.nn.functional as F
from torch import nn

from advnets.device import device_name
from advnets.gan.trainer import Trainer
from advnets.params import load_params


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(device: torch.device, n: int = 2048, repeats: int = 20) -> float:
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


# (inputs, outputs) of each linear map; a maxout layer of 240 units x 5 pieces maps to 1200.
G_LAYERS = [(100, 1200), (1200, 1200), (1200, 784)]
D_LAYERS = [(784, 1200), (240, 1200), (240, 1)]


def step_gflop(batch: int = 100) -> float:
    """The GEMM work one simultaneous step cannot avoid: forwards, the D-loss weight gradients,
    the G-loss gradients through D into G, and G's weight gradients."""
    g_macs = sum(a * b for a, b in G_LAYERS)
    d_macs = sum(a * b for a, b in D_LAYERS)
    g_first, d_first = G_LAYERS[0][0] * G_LAYERS[0][1], D_LAYERS[0][0] * D_LAYERS[0][1]
    macs = (
        batch * g_macs  # G forward
        + 2 * batch * d_macs  # D forward, data and fakes
        + 2 * batch * d_macs  # D weight gradients, data and fakes
        + 2 * batch * (d_macs - d_first)  # D-loss gradients between D's layers
        + batch * d_macs  # G loss: gradients through D down to the fakes
        + batch * g_macs  # G weight gradients
        + batch * (g_macs - g_first)  # gradients between G's layers
    )
    return 2 * macs / 1e9


class PlainMaxout(nn.Module):
    def __init__(self, n_in: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces, self.linear = units, pieces, nn.Linear(n_in, units * pieces)

    def forward(self, x):
        return self.linear(x).view(-1, self.units, self.pieces).max(dim=-1).values


def plain_loop(device: torch.device, images: torch.Tensor, steps: int) -> float:
    """A straightforward PyTorch implementation of the same nets and simultaneous update."""
    G = nn.Sequential(
        nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU(), nn.Linear(1200, 784), nn.Sigmoid()
    ).to(device)
    D = nn.Sequential(
        nn.Dropout(0.2), PlainMaxout(784, 240, 5), nn.Dropout(0.5), PlainMaxout(240, 240, 5),
        nn.Dropout(0.5), nn.Linear(240, 1), nn.Sigmoid(),
    ).to(device)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1, momentum=0.5)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1, momentum=0.5)
    ones, zeros = torch.ones(100, 1, device=device), torch.zeros(100, 1, device=device)

    def step(i):
        x = images[(i * 100) % len(images) :][:100]
        z = torch.rand(100, 100, device=device) * 2 * 3**0.5 - 3**0.5
        fake = G(z)
        real_out, fake_out = D(x), D(fake)
        loss_d = 0.5 * (F.binary_cross_entropy(real_out, ones) + F.binary_cross_entropy(fake_out, zeros))
        loss_g = F.binary_cross_entropy(fake_out, ones)
        opt_d.zero_grad()
        loss_d.backward(retain_graph=True)
        d_grads = [p.grad.clone() for p in D.parameters()]
        opt_g.zero_grad()
        loss_g.backward()
        for p, grad in zip(D.parameters(), d_grads):
            p.grad = grad
        opt_d.step()
        opt_g.step()

    return _time(step, steps, device)


def advnets_loop(device: torch.device, images: torch.Tensor, steps: int) -> float:
    params = load_params()
    trainer = Trainer(params, images, images[:100], device)
    from advnets.gan.updates import simultaneous_step

    def step(i):
        simultaneous_step(trainer.nets, images[(i * 100) % len(images) :][:100], 0)

    return _time(step, steps, device)


def graphed_loop(device: torch.device, images: torch.Tensor, steps: int) -> float:
    """advnets' step as the trainer runs it on a GPU: replayed from a CUDA graph (advnets.gan.cuda_graph)."""
    trainer = Trainer(load_params(), images, images[:100], device)

    def step(i):
        trainer.simultaneous_step(images[(i * 100) % len(images) :][:100], 0)

    return _time(step, steps, device)


def _time(step, steps: int, device: torch.device) -> float:
    for i in range(10):
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    sync(device)
    return steps / (time.perf_counter() - start)


def _side_by_side_worker(barrier, steps: int, queue) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images = torch.rand(10_000, 784)
    trainer = Trainer(load_params(), images, images[:100], torch.device("cpu"))
    from advnets.gan.updates import simultaneous_step

    for i in range(10):
        simultaneous_step(trainer.nets, images[i * 100 :][:100], 0)
    barrier.wait(timeout=600)  # all start timing together, so they share the machine throughout
    start = time.perf_counter()
    for i in range(steps):
        simultaneous_step(trainer.nets, images[(i * 100) % len(images) :][:100], 0)
    queue.put(steps / (time.perf_counter() - start))


def side_by_side(processes: int, steps: int) -> list[float]:
    """steps/s of each of `processes` independent one-thread runs of the step, timed together:
    what that many cores give this step with no coordination between them at all."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_side_by_side_worker, args=(barrier, steps, queue)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        rates = [queue.get(timeout=1200) for _ in workers]
    except queue_module.Empty:
        raise SystemExit(f"side by side: a worker gave no result (exit codes {[w.exitcode for w in workers]})") from None
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--side-by-side", type=int, default=0, metavar="N",
        help="CPU: also time N independent one-thread runs of the step at once (N = the threads: "
        "the most those cores give this step, with perfect parallelism)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    images = torch.rand(10_000, 784, device=device)

    name = device_name(device)
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    gflops = gemm_gflops(device)
    work = step_gflop()
    print(f"fp32 GEMM: {gflops:.1f} GFLOP/s; one step: {work:.2f} GFLOP of GEMM -> bound {gflops / work:.1f} steps/s")
    loops = [("plain PyTorch loop", plain_loop), ("advnets step", advnets_loop)]
    if device.type == "cuda":
        loops.append(("advnets, CUDA graph", graphed_loop))
    for label, loop in loops:
        try:
            rate = loop(device, images, args.steps)
        except RuntimeError as exc:  # a capture that fails says why, and the other rows still print
            print(f"{label:>20}: failed: {exc}")
            continue
        print(
            f"{label:>20}: {rate:7.2f} steps/s  {rate * 100:8.0f} images/s  "
            f"{500 / rate:6.1f} s/epoch  {100 * rate * work / gflops:5.1f}% of the GEMM bound"
        )
    if args.side_by_side and device.type == "cpu":
        if args.side_by_side != torch.get_num_threads():
            print(f"note: {args.side_by_side} runs against the bound of {torch.get_num_threads()} threads")
        rates = side_by_side(args.side_by_side, args.steps)
        total = sum(rates)
        print(
            f"{args.side_by_side} one-thread runs side by side: {', '.join(f'{r:.2f}' for r in rates)} steps/s, "
            f"{total:.2f} together = {100 * total * work / gflops:.1f}% of the GEMM bound above"
        )


if __name__ == "__main__":
    main()
