"""Two replicas behind nginx on 127.0.0.1 (deploy/replicas.py): every visitor's requests reach their own replica."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port_pair() -> int:
    """a port p with p + 1 and p + 2 free too (nginx, then the two replicas)"""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 2 < 65535 and all(_free(p + i) for i in (1, 2)):
            return p
    raise RuntimeError("no three free ports in a row")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """nginx on a free port and two replicas serving mnist; a fake Hub serves one tiny model repo to both"""
    import torch

    from conftest import TINY
    from fakehub import FakeHub
    from vae_demo.models.vae import VAE, VAEConfig

    assert Path(NGINX).exists(), "the replica test needs nginx: apt-get install -y nginx"
    port = free_port_pair()
    logs = tmp_path_factory.mktemp("replicas")
    hub = FakeHub().start()
    torch.manual_seed(0)
    VAE(VAEConfig(**TINY)).save_pretrained(logs / "tiny")
    hub.add_folder("someone/tiny", logs / "tiny")
    env = {**os.environ, "HF_ENDPOINT": hub.url.rstrip("/"), "HF_HOME": str(logs / "hf"), "HF_HUB_OFFLINE": "0"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "replicas.py"), "--replicas", "2", "--port", str(port),
                             "--logs", str(logs), "--", "--model", "mnist"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(url + "/gradio_api/info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        raise AssertionError("nginx and the replicas did not come up")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    hub.stop()


def test_a_visitors_requests_stay_on_one_replica_and_visitors_are_spread(front):
    seen_by_visitor = []
    for _ in range(12):
        with httpx.Client(base_url=front, timeout=30) as visitor:  # keeps its cookie, as a browser does
            replicas = {visitor.get("/").headers["x-vae-demo-replica"]}
            for path in ("/config", "/gradio_api/info", "/gradio_api/info", "/"):
                replicas.add(visitor.get(path).headers["x-vae-demo-replica"])
            assert len(replicas) == 1, replicas
            seen_by_visitor.append(replicas.pop())
    assert len(set(seen_by_visitor)) == 2  # twelve visitors, both replicas used


def test_a_run_time_model_and_the_queue_work_through_nginx(front):
    """gradio_client keeps the cookie of its first answer: its queue joins, event streams and its run-time model are
    all on one replica (a model loaded on one replica does not exist on the other, so a call that strayed would fail)."""
    from gradio_client import Client, handle_file

    clients = [Client(front + "/", verbose=False) for _ in range(4)]
    for client in clients:
        client.predict("someone/tiny", api_name="/load_model")
        for _ in range(3):
            sheet, z = client.predict("someone/tiny", 4, 0, 1.0, api_name="/sample")
            assert len(z) == 4 and len(z[0]) == 3
    client = clients[0]
    rec, metrics, _ = client.predict(handle_file(str(ROOT / "checkpoints/mnist/examples/3_3.png")), "mnist",
                                     api_name="/reconstruct")
    assert metrics["reconstruction_class"] == "3"
