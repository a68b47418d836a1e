"""Choosing the torch device from a params value: auto | cpu | cuda."""

from __future__ import annotations

import torch

from advnets.errors import AdvnetsError


def resolve_device(choice: str) -> torch.device:
    """auto takes the GPU when torch sees one; cuda without a GPU is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise AdvnetsError("device is cuda but torch sees no CUDA device")
    return torch.device(choice)
