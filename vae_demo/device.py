"""Choose the torch device once, at the entry point."""

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda, then mps, then cpu; an explicit name that is not available raises ValueError."""
    name = (name or "auto").lower()
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {name!r}.")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto.")
    if name == "mps" and not mps_ok:
        raise ValueError("device 'mps' was asked for but Apple's MPS backend is not available; use --device cpu or auto.")
    return torch.device(name)


def gpu_decorator(**kwargs):
    """-> spaces.GPU (or spaces.GPU(**kwargs), e.g. duration=60) when the `spaces` package is importable, else a no-op.

    On a ZeroGPU Space a GPU exists only inside functions decorated with spaces.GPU: put it on the app's handlers
    that run a model (app.py), not on model code; outside Spaces the decorator does nothing.
    """
    try:
        import spaces  # noqa: PLC0415
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(**kwargs) if kwargs else spaces.GPU
