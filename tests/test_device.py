"""device.py: the device choice, and the CPU threads a request's forwards use."""

import threading

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
            with device.batch_threads(8):
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
