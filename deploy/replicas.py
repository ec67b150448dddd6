"""Serve vae-demo from several processes behind nginx, at one address, each visitor kept on one replica.

    python deploy/replicas.py --replicas 2 --port 7860 [--host 127.0.0.1] [-- app.py's flags, e.g. --model mnist faces]

Starts `python app.py --port P` for P = port + 1 … port + N (on 127.0.0.1), waits until each answers, writes an nginx
configuration from deploy/nginx.conf.template into a temporary folder, and runs nginx in the foreground on
--host:--port. Ctrl-C (or SIGTERM) stops nginx and every replica. Every replica gets the same VAE_DEMO_SECRET, so a
visitor's token (kept in their browser) reads the same on any of them. Needs nginx (`apt-get install nginx`).

Gradio holds a visitor's queue, event stream and session state in one process, so nginx pins each visitor to one
replica by a cookie (a consistent hash of it). gradio_client keeps the cookie of its first response, so API clients
stay on one replica too. On several machines the same configuration works with their addresses in the upstream.
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_BODY = "21m"  # a little above the app's own upload limit (vae_demo.imaging.uploads.MAX_UPLOAD_BYTES, 20 MiB)


def nginx_config(prefix: Path, listen: str, backends: list) -> str:
    servers = "\n".join(f"        server {b};" for b in backends)
    text = (HERE / "nginx.conf.template").read_text()
    for key, value in {"PREFIX": str(prefix), "LISTEN": listen, "SERVERS": servers, "MAX_BODY": MAX_BODY}.items():
        text = text.replace("{" + key + "}", value)
    return text


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a replica exited with status {proc.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url + "/gradio_api/info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url} within {timeout:.0f} s")


def start(replicas: int, port: int, host: str, app_args: list, log_dir: Path) -> tuple:
    """-> (the replica processes, nginx's process, the nginx folder)"""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx")
    env = {**os.environ, "VAE_DEMO_SECRET": os.environ.get("VAE_DEMO_SECRET") or secrets.token_hex(16)}
    procs, backends = [], []
    for i in range(1, replicas + 1):
        p = port + i
        log = open(log_dir / f"replica-{p}.log", "w")
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(p),
                                       *app_args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        backends.append(f"127.0.0.1:{p}")
    for b, proc in zip(backends, procs):
        wait_until_up(f"http://{b}", proc)
    prefix = Path(tempfile.mkdtemp(prefix="vae-demo-nginx-"))
    prefix.chmod(0o755)  # started as root, nginx's workers run as another user and keep their buffers in here
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, f"{host}:{port}", backends))
    front = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
    return procs, front, prefix


def stop(procs: list, front) -> None:
    for p in [front, *procs]:
        if p is not None and p.poll() is None:
            p.terminate()
    for p in [front, *procs]:
        if p is not None:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--port", type=int, default=7860, help="nginx listens here; the replicas on the next N ports")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--logs", default=None, help="folder for the replicas' logs (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.replicas < 1:
        raise SystemExit("--replicas must be at least 1")
    log_dir = Path(args.logs or tempfile.mkdtemp(prefix="vae-demo-replicas-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    procs, front = [], None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        procs, front, prefix = start(args.replicas, args.port, args.host, app_args, log_dir)
        print(f"vae-demo: {args.replicas} replicas behind nginx at http://{args.host}:{args.port} "
              f"(replica logs in {log_dir}, nginx in {prefix})", flush=True)
        front.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(procs, front)
    return 0


if __name__ == "__main__":
    sys.exit(main())
