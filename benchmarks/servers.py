"""Start the app and the floor app as subprocesses on 127.0.0.1, time them to their first answer, read their memory."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

# Gradio's floor: one image in, the same image out, with the app's queue settings (app.py:
# demo.queue(max_size=64, default_concurrency_limit=2)) so that a ratio to it isolates the app's own work.
FLOOR_APP = '''\
"""The floor: a no-op Gradio image endpoint (written by benchmarks/bench.py)."""
import sys

import gradio as gr


def echo(image):
    return image


with gr.Blocks() as demo:
    inp = gr.Image(type="filepath")
    out = gr.Image(format="png")
    gr.Button().click(echo, [inp], [out], api_name="echo")
demo.queue(max_size=64, default_concurrency_limit=int(sys.argv[2]))
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
'''


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process; `url` is its root. Stops itself when used as a context manager."""

    def __init__(self, name: str, argv: list, cwd: Path, env: dict, log_dir: Path, port: int):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}-{port}.log"
        self._log = open(self.log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status_kib(self, field: str) -> Optional[int]:
        """A memory line of /proc/<pid>/status in KiB, e.g. VmHWM (peak RSS) or VmRSS; None if gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, n: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def server_env(tmp: Path, gradio_profiling: bool) -> dict:
    env = dict(os.environ)
    (tmp / "tmp").mkdir(exist_ok=True)
    env.update(
        TMPDIR=str(tmp / "tmp"),  # the app's own temporary files (its GIFs) stay in the run folder too
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(tmp / "gradio-cache"),  # the run's own cache, removed with the run folder
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        GRADIO_PROFILING="1" if gradio_profiling else "",  # per-request phase timings at /gradio_api/profiling/*
    )
    env.pop("GRADIO_SERVER_PORT", None)
    env.pop("GRADIO_SERVER_NAME", None)
    # Python's default: a module is compiled once and its bytecode cached, as on any machine that runs the app twice.
    # A shell that sets PYTHONDONTWRITEBYTECODE (this project's CI machine does) makes every start recompile the
    # app's ~40 modules (~60 ms), a cost the floor, which has none, never pays; the first start still pays it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def start_app(app_dir: Path, models: list, device: str, env: dict, log_dir: Path, launcher: Optional[list] = None) -> Server:
    """`python app.py --port P --device D --model ...`, or `launcher` (argv before those flags) for an experiment."""
    port = free_port()
    argv = (launcher or [sys.executable, "app.py"]) + ["--port", str(port), "--device", device, "--model", *models]
    return Server("app", argv, app_dir, env, log_dir, port)


def start_floor(tmp: Path, env: dict, log_dir: Path, concurrency_limit: int) -> Server:
    script = tmp / "floor_app.py"
    if not script.exists():
        script.write_text(FLOOR_APP)
    port = free_port()
    return Server("floor", [sys.executable, str(script), str(port), str(concurrency_limit)], tmp, env, log_dir, port)
