"""Choose the torch device once, at the entry point; and how many CPU threads a request's forwards use."""

import contextlib
import threading

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


# --- CPU threads per request --------------------------------------------------------------------------------------
# torch runs each forward on an OpenMP team of `torch.get_num_threads()` threads, and that setting belongs to the
# calling thread (it is an OpenMP per-thread setting; tests/test_device.py checks it on the torch installed). The
# server runs up to two requests at once, each in its own worker thread, beside its event loop, on a machine that
# may have only two cores: two teams of two threads then fight for two cores. Measured (docs/PERFORMANCE.md): an
# encode or decode of one image takes 0.36 ms on one thread against 0.69 ms on two, even alone; a decode of 64
# takes 19 ms on two against 28 ms on one when nothing else runs.
_CORES = max(1, torch.get_num_threads())  # torch's default for this machine, read once on the importing thread
_running = 0  # requests inside request_threads() now
_running_lock = threading.Lock()


@contextlib.contextmanager
def request_threads():
    """Around one request's model work (the app's handlers): one intra-op thread for this thread's small forwards,
    and a count of the requests running, which `batch_threads` shares the cores by. Restores the thread's setting."""
    global _running
    with _running_lock:
        _running += 1
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
        with _running_lock:
            _running -= 1


@contextlib.contextmanager
def batch_threads(batch: int, min_batch: int = 32):
    """Around the forward of a batch of `batch` images: inside a request, the cores shared among the requests
    running now (all of them for a request alone) when the batch is large enough to gain from them; outside a
    request (the CLI, the tests) torch's own setting. Restores the thread's setting."""
    if not _running or batch < min_batch:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, _CORES // _running))
    try:
        yield
    finally:
        torch.set_num_threads(old)
