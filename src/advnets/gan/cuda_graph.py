"""The simultaneous step replayed from a CUDA graph.

On a GPU the paper's small nets leave a step bound by its ~100 kernel launches, each a few
microseconds of work. Captured once in a CUDA graph, the whole step is one launch. What is
captured is `updates.simultaneous_update`: it holds no per-step host value (the learning rate is a
device tensor the optimizer's `schedule` sets before each replay; noise and dropout masks come from
torch's graph-safe random stream). The momentum is a constant of the captured optimizer kernels,
so the graph is captured again whenever it changes (once per epoch while it ramps). The first
steps run eagerly, on a side stream: they create the optimizer's momentum buffers and the CUDA
libraries' workspaces, which a capture must not do. The maths is the eager step's.
"""

from __future__ import annotations

import torch

from advnets.gan.updates import DStats, Nets, simultaneous_update

EAGER_STEPS = 3


class GraphedSimultaneousStep:
    """Callable like `updates.simultaneous_step`; its outputs live in the graph's memory and are
    overwritten by the next step, so copy what must be kept."""

    def __init__(self, nets: Nets, batch_shape: tuple[int, int], device: torch.device):
        self.nets, self.device = nets, device
        self.x = torch.empty(batch_shape, device=device)  # the graph's input
        self.side = torch.cuda.Stream(device)  # for the eager steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.captured_momentum: tuple[float, float] | None = None
        self.outputs: tuple[DStats, torch.Tensor] | None = None
        self.eager_steps = 0

    def __call__(self, x: torch.Tensor, completed_epochs: int) -> tuple[DStats, torch.Tensor]:
        self.nets.opt_d.schedule(completed_epochs)
        self.nets.opt_g.schedule(completed_epochs)
        if self.eager_steps < EAGER_STEPS:
            self.eager_steps += 1
            return self._on_side_stream(x)
        momentum = (self.nets.opt_d.param_groups[0]["momentum"], self.nets.opt_g.param_groups[0]["momentum"])
        if momentum != self.captured_momentum:
            self._capture()
            self.captured_momentum = momentum
        self.x.copy_(x)
        self.graph.replay()
        return self.outputs

    def _on_side_stream(self, x: torch.Tensor) -> tuple[DStats, torch.Tensor]:
        main = torch.cuda.current_stream(self.device)
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            outputs = simultaneous_update(self.nets, x)
        main.wait_stream(self.side)
        return outputs

    def _capture(self) -> None:
        """Record the step's kernels (capture runs nothing: the next replay is the step)."""
        if self.graph is not None:
            self.graph.reset()  # frees its private memory before the next capture takes its own
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = simultaneous_update(self.nets, self.x)
