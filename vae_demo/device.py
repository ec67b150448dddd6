"""Choose the torch device once, at the entry point; how many CPU threads a request's forwards use; whether the
networks that allow it serve in bfloat16; and how the C heap hands memory back, which decides what a forward's fresh
tensors cost."""

import contextlib
import ctypes
import functools
import logging
import os
import threading
from pathlib import Path

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
# may have only two cores: two teams of two threads then fight for two cores. A single image's forward is faster on
# one thread even alone (a team's start costs more than it shares), while a large batch gains from the cores that no
# other request uses (docs/PERFORMANCE.md, where the time goes).
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
def batch_threads(batch: int, min_batch: int = 8):
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


# --- bfloat16 on the CPU ----------------------------------------------------------------------------------------
# A CPU with AMX or AVX512-BF16 multiplies bfloat16 in hardware, and oneDNN's bf16 convolutions and matrix products
# then beat float32 and read half the bytes of weights; elsewhere bf16 is emulated and slower. A network that allows it
# (a VAE whose config sets `serve_bf16`, the face reader) serves its forwards in bf16 behind a float32 interface
# (models/precision.py). Training, evaluation and the documented figures stay in float32; benchmarks/faces.py
# measures how far the served answers follow them (docs/FACES.md).
PRECISION_ENV = "VAE_DEMO_PRECISION"  # "auto" (the default), "fp32" (never bf16) or "bf16" (on any CPU)


@functools.lru_cache(maxsize=None)
def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 natively: AMX or AVX512-BF16 among /proc/cpuinfo's flags (Linux; False
    where that file cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags


def serve_in_bf16(device) -> bool:
    """Whether the networks that allow it serve in bfloat16 on `device`: on a CPU that multiplies bf16 natively,
    unless VAE_DEMO_PRECISION=fp32; VAE_DEMO_PRECISION=bf16 forces it on any CPU. Never on a GPU."""
    setting = os.environ.get(PRECISION_ENV, "auto").strip().lower()
    if setting not in ("auto", "fp32", "bf16"):
        raise ValueError(f"{PRECISION_ENV} must be auto, fp32 or bf16; got {setting!r}.")
    if torch.device(device).type != "cpu" or setting == "fp32":
        return False
    return setting == "bf16" or native_bf16_cpu()


# --- the C heap -------------------------------------------------------------------------------------------------
# glibc serves an allocation above its mmap threshold (128 KiB at first, raised as such blocks are freed) with
# fresh pages from the kernel and returns them on free, so every forward pays a page fault per 4 KiB of each new
# activation: a decode of 64 MNIST samples allocates ~40 MB and spent a third of its time in SiLU's output alone.
# Serving them from the heap and keeping freed memory for the next request removes those faults (tests/test_device.py
# counts them). The same as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment, which win.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
log = logging.getLogger("vae_demo")


def reuse_freed_memory(mmap_threshold_mb: int = 64, trim_threshold_mb: int = 256) -> bool:
    """Blocks up to `mmap_threshold_mb` come from the heap, and up to `trim_threshold_mb` of freed heap is kept for
    reuse. glibc (Linux) only; elsewhere, or when the environment sets either, nothing changes. -> applied?"""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: macOS, Windows
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20) == 1 and mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20) == 1
    log.debug("mallopt: %s", "applied" if done else "refused")
    return done
