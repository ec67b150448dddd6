"""device.py: the device choice, and the CPU threads a request's forwards use."""

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from vae_demo import device


def test_an_unknown_or_unavailable_device_is_refused_with_a_sentence():
    with pytest.raises(ValueError, match="device must be one of"):
        device.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            device.pick_device("cuda")
    assert device.pick_device("cpu") == torch.device("cpu")


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_torch_threads_are_a_setting_of_the_calling_thread():
    """What request_threads relies on: one request setting its thread count leaves another thread's alone."""
    before = torch.get_num_threads()
    seen = in_thread(lambda: (torch.set_num_threads(1), torch.get_num_threads())[1])
    assert seen == 1
    assert torch.get_num_threads() == before


def test_a_request_runs_on_one_thread_and_a_large_batch_gets_the_cores_it_shares(monkeypatch):
    monkeypatch.setattr(device, "_CORES", 4)

    def inside():
        start = torch.get_num_threads()
        with device.request_threads():
            one = torch.get_num_threads()
            with device.batch_threads(64):
                alone = torch.get_num_threads()
            with device.batch_threads(2):  # one image and its posterior sample: no gain from a team
                small = torch.get_num_threads()
            with device.request_threads():  # a second request running at the same time
                with device.batch_threads(64):
                    shared = torch.get_num_threads()
            after_batch = torch.get_num_threads()
        return start, one, alone, small, shared, after_batch, torch.get_num_threads()

    start, one, alone, small, shared, after_batch, restored = in_thread(inside)
    assert (one, alone, small, shared, after_batch) == (1, 4, 1, 2, 1)
    assert restored == start and device._running == 0


def test_outside_a_request_a_batch_keeps_torchs_own_setting():
    before = torch.get_num_threads()
    with device.batch_threads(1000):
        assert torch.get_num_threads() == before


def test_every_app_handler_runs_inside_request_threads():
    from ui.common import user_errors

    @user_errors
    def handler():
        return torch.get_num_threads(), device._running

    assert in_thread(handler) == (1, 1)
    assert device._running == 0


def test_the_heap_setting_is_applied_on_glibc_and_left_to_the_environment_when_it_says(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert device.reuse_freed_memory() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    applied = device.reuse_freed_memory()
    assert applied is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


FAULTS = """
import resource, sys
import torch
from vae_demo import device
if sys.argv[1] == "on":
    assert device.reuse_freed_memory()
else:  # glibc's default threshold (128 KiB), pinned: left alone, glibc raises it as large blocks are freed, by an
    import ctypes  # amount that depends on what was allocated before (the count went from 9,000 to 63,000 run to run)

    assert ctypes.CDLL(None).mallopt(-3, 128 << 10) == 1  # M_MMAP_THRESHOLD
def forward_like():  # five 6 MiB activations, then all freed: what a decode of 64 samples does
    ts = [torch.empty(6 << 20, dtype=torch.uint8).fill_(1) for _ in range(5)]
    del ts
forward_like()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    forward_like()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_with_the_heap_setting_repeated_forwards_stop_faulting_in_fresh_pages():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    root = str(Path(__file__).resolve().parents[1])

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env, cwd=root, check=True)
        return int(out.stdout.split()[-1])

    off, on = faults("off"), faults("on")
    assert off > 2000  # glibc's default: every burst's pages come fresh from the kernel (fewer faults with huge pages)
    assert on < off / 4


def test_bf16_serving_follows_the_cpu_and_the_setting(monkeypatch):
    """VAE_DEMO_PRECISION: fp32 never, bf16 on any CPU, auto where the CPU multiplies bf16 natively; never on a GPU;
    another value is refused with a sentence."""
    monkeypatch.setenv(device.PRECISION_ENV, "fp32")
    assert not device.serve_in_bf16("cpu")
    monkeypatch.setenv(device.PRECISION_ENV, "bf16")
    assert device.serve_in_bf16("cpu") and not device.serve_in_bf16("cuda")
    monkeypatch.setenv(device.PRECISION_ENV, "auto")
    assert device.serve_in_bf16(torch.device("cpu")) == device.native_bf16_cpu()
    monkeypatch.setenv(device.PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="must be auto, fp32 or bf16"):
        device.serve_in_bf16("cpu")


def test_native_bf16_is_read_from_the_cpus_flags():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    assert device.native_bf16_cpu() == ("amx_bf16" in flags or "avx512_bf16" in flags)
