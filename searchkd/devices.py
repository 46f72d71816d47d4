"""The device a run uses, resolved once from ``--device`` (devices are passed in, never global)."""

from __future__ import annotations

from searchkd.errors import SearchKDError

__all__ = ["resolve_device"]


def resolve_device(device: str | None) -> str:
    """``auto``/None → ``cuda`` when available, else ``cpu``; ``cuda`` without CUDA is an error."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SearchKDError("--device cuda asked for, but torch sees no CUDA device")
    if device not in ("cpu",) and not str(device).startswith("cuda"):
        raise SearchKDError(f"unknown device {device!r} (auto, cpu, cuda)")
    return str(device)
