"""Choosing the torch device from a params value: auto | cpu | cuda; and naming the machine."""

from __future__ import annotations

import os
import platform

import torch

from advnets.errors import AdvnetsError


def resolve_device(choice: str) -> torch.device:
    """auto takes the GPU when torch sees one; cuda without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise AdvnetsError("device is cuda but torch sees no CUDA device")
    return torch.device(choice)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model, the cores this process may use and torch's threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = torch.get_num_threads()
    return f"{model}, {cores} cores, {threads} thread{'s' if threads > 1 else ''}"
