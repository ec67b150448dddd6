"""Training runs on a server: one at a time, each in its own process, the rest waiting in line.

A run is a child process (`python -m vae_demo.training.in_app RUN_DIR`; this module never imports the trainer), so
a crash or a memory blow-up there ends that run, not the server. The supervisor thread here starts the next run in
line, reads the child's events (loss rows, previews) as they are written, stops it (SIGTERM: it saves what it
learned; SIGKILL if it does not within STOP_GRACE), kills it if it outgrows VAE_DEMO_TRAIN_MAX_RSS_MB or its time,
and when it ends adds its model to the registry as a run-time model of the visitor who trained it (so it is capped
and evicted like a model loaded by repo id) and zips the folder for download.

Disk: runs live in one temporary folder; the oldest runs' folders are deleted past VAE_DEMO_TRAIN_KEEP_RUNS.
"""

import atexit
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from vae_demo.hub.loading import ModelLoadError
from vae_demo.models.recipe import SettingsError, TrainSettings, env_count
from vae_demo.serving.registry import ModelRegistry

STOP_GRACE = 15.0  # seconds a stopped run has to save before it is killed
START_GRACE = 60.0  # seconds past its budget a run may take to start and save before it is killed
MAX_WAITING = 8  # runs in line behind the one training; one more is refused with a sentence
POLL = 0.2  # seconds between the supervisor's looks at the child


@dataclass
class Job:
    id: int
    owner: str
    settings: TrainSettings
    run_dir: Path
    state: str = "waiting"  # waiting -> training -> done | stopped | failed
    rows: list = field(default_factory=list)  # the loss curve: {"t", "step", "seen", "rec", "kl"}
    preview: Optional[str] = None  # the latest picture of reconstructions and samples
    first_preview_after: Optional[float] = None  # seconds from submit to the first picture
    message: str = ""  # why it failed, or a note on how it ended
    model_name: Optional[str] = None
    zip_path: Optional[str] = None
    outcome: dict = field(default_factory=dict)
    submitted: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    stop_requested: bool = False
    proc: Optional[subprocess.Popen] = None
    _offset: int = 0  # how far events.jsonl has been read

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "failed")


class TrainingJobs:
    def __init__(self, registry: ModelRegistry, root: Optional[Path] = None):
        self.registry = registry
        self.root = Path(root or tempfile.mkdtemp(prefix="vae-demo-runs-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_rss_mb = env_count("VAE_DEMO_TRAIN_MAX_RSS_MB", 3072)
        self.keep_runs = env_count("VAE_DEMO_TRAIN_KEEP_RUNS", 32)
        self._jobs: list = []  # every job, oldest first (finished ones until pruned)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._standby: Optional[subprocess.Popen] = None  # a training process waiting for its run (warm())
        atexit.register(self.close)

    # --- what a handler calls -------------------------------------------------------------------------------------
    def submit(self, owner: str, settings: TrainSettings, images: Optional[np.ndarray] = None) -> Job:
        """A run for `owner`, in line behind any other; refused with a sentence if they have one in line already,
        the line is full, or they hold as many run-time models as they may (its model would have no room)"""
        with self._lock:
            mine = [j for j in self._jobs if j.owner == owner and not j.finished]
            if mine:
                raise SettingsError("You have a run training or waiting already; stop it or wait for it to end.")
            if sum(not j.finished for j in self._jobs) > MAX_WAITING:
                raise SettingsError(f"{MAX_WAITING} runs are waiting to train on this server; try again in a few minutes.")
            self.registry.check_room(owner)
            number = next(self._ids)
            job = Job(number, owner, settings, self.root / f"run-{number:04d}")
            job.run_dir.mkdir(parents=True)
            (job.run_dir / "settings.json").write_text(json.dumps(settings.to_dict()))
            if images is not None:
                np.save(job.run_dir / "images.npy", images, allow_pickle=False)
            self._jobs.append(job)
            self._start_supervisor()
        self._wake.set()
        return job

    def place(self, job: Job) -> int:
        """0: training (or finished); k: k-th in line"""
        with self._lock:
            if job.state != "waiting":
                return 0
            waiting = [j for j in self._jobs if j.state == "waiting"]
            busy = any(j.state == "training" for j in self._jobs)
            return waiting.index(job) + (1 if busy else 0) if job in waiting else 0

    def stop(self, owner: str) -> bool:
        """Stop `owner`'s run: a waiting one leaves the line, a training one saves what it learned -> whether one was"""
        with self._lock:
            job = next((j for j in self._jobs if j.owner == owner and not j.finished), None)
            if job is None:
                return False
            job.stop_requested = True
            if job.state == "waiting":
                job.state, job.message = "stopped", "Stopped before it started: nothing was trained."
            elif job.proc is not None and job.proc.poll() is None:
                job.proc.send_signal(signal.SIGTERM)
        self._wake.set()
        return True

    def current(self, owner: str) -> Optional[Job]:
        """the owner's latest run"""
        with self._lock:
            return next((j for j in reversed(self._jobs) if j.owner == owner), None)

    def training(self) -> Optional[Job]:
        with self._lock:
            return next((j for j in self._jobs if j.state == "training"), None)

    def kill_current(self) -> bool:
        """SIGKILL the training process (tests: a crashed run must leave the server serving)"""
        job = self.training()
        if job is None or job.proc is None:
            return False
        job.proc.kill()
        return True

    # --- the supervisor -------------------------------------------------------------------------------------------
    def _start_supervisor(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._supervise, name="vae-demo-training", daemon=True)
            self._thread.start()

    def _supervise(self) -> None:
        while True:
            with self._lock:
                job = next((j for j in self._jobs if j.state == "training"), None)
                if job is None:
                    job = next((j for j in self._jobs if j.state == "waiting"), None)
                    if job is not None:
                        self._launch(job)
            if job is None:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            self._watch(job)

    def warm(self) -> None:
        """Have a training process ready (imports done), so the next run trains at once: called when a visitor
        opens the Train tab and after each run. It waits on its stdin; the server's end closes it."""
        with self._lock:
            if self._standby is None or self._standby.poll() is not None:
                self._standby = self._spawn(["--standby"], self.root / "standby-stderr.txt", stdin=subprocess.PIPE)

    def close(self) -> None:
        """stop the training process (if any) and the standby one"""
        with self._lock:
            standby, self._standby = self._standby, None
            running = [j.proc for j in self._jobs if j.proc is not None and j.proc.poll() is None]
        for proc in running + ([standby] if standby is not None else []):
            proc.kill()

    @staticmethod
    def _spawn(args: list, stderr: Path, stdin=subprocess.DEVNULL) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
        with open(stderr, "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "vae_demo.training.in_app", *args], env=env, cwd=root,
                                    stdout=subprocess.DEVNULL, stderr=log, stdin=stdin)

    def _launch(self, job: Job) -> None:
        """under the lock: the standby process takes the job (or a fresh process does)"""
        standby, self._standby = self._standby, None
        if standby is not None and standby.poll() is None:
            try:
                standby.stdin.write((str(job.run_dir) + "\n").encode())
                standby.stdin.close()
                job.proc = standby
            except OSError:
                standby.kill()
        if job.proc is None:
            job.proc = self._spawn([str(job.run_dir)], job.run_dir / "stderr.txt")
        job.state, job.started = "training", time.monotonic()

    def _watch(self, job: Job) -> None:
        """follow one training job until its process ends, then finish it"""
        deadline = job.started + job.settings.seconds + START_GRACE
        stop_sent = None
        while job.proc.poll() is None:
            self._read_events(job)
            now = time.monotonic()
            if job.stop_requested and stop_sent is None:
                stop_sent = now
            if rss_mb(job.proc.pid) > self.max_rss_mb:
                job.message = (f"The run used more than {self.max_rss_mb} MB of memory (VAE_DEMO_TRAIN_MAX_RSS_MB) "
                               "and was ended; try smaller images or a smaller image size.")
                job.proc.kill()
            elif now > deadline or (stop_sent is not None and now - stop_sent > STOP_GRACE):
                job.message = job.message or "The run did not end in time and was ended."
                job.proc.kill()
            time.sleep(POLL)
        self._read_events(job)
        self._finish(job)

    def _read_events(self, job: Job) -> None:
        path = job.run_dir / "events.jsonl"
        if not path.is_file():
            return
        with open(path, "rb") as f:
            f.seek(job._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next look
        job._offset += len(complete)
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("kind")
            with self._lock:
                if kind == "loss":
                    job.rows.append({k: event[k] for k in ("t", "step", "seen", "rec", "kl")})
                elif kind == "preview":
                    job.preview = event["path"]
                    if job.first_preview_after is None:
                        job.first_preview_after = time.monotonic() - job.started
                elif kind == "saved":
                    job.outcome = event["outcome"]
                elif kind == "error":
                    job.message = "The run failed: " + str(event.get("message", ""))[:300]

    def _finish(self, job: Job) -> None:
        folder = job.run_dir / "model"
        saved = bool(job.outcome) and (folder / "model.safetensors").is_file()
        if not saved:
            with self._lock:
                job.state = "failed"
                job.message = job.message or (f"The training process ended without saving a model (exit code "
                                              f"{job.proc.returncode}); the server is fine. Try again.")
            self._prune()
            return
        name = f"trained-{job.settings.source}-{job.id}"
        target = job.run_dir / name
        folder.rename(target)
        job.zip_path = str(zip_folder(target, job.run_dir / f"{name}.zip"))
        try:
            self.registry.add_trained(target, name, job.owner, job.outcome)
            job.model_name = name
        except ModelLoadError as e:
            job.message = f"{e} Your model is still yours to download."
        with self._lock:
            job.state = "stopped" if job.stop_requested or job.outcome.get("stopped") else "done"
        self._prune()
        self.warm()

    def _prune(self) -> None:
        """delete the oldest finished runs' folders past keep_runs (their models leave the registry's reach)"""
        with self._lock:
            done = [j for j in self._jobs if j.finished]
            old = done[: max(0, len(done) - self.keep_runs)]
            self._jobs = [j for j in self._jobs if j not in old]
        for j in old:
            if j.model_name:
                self.registry.forget_trained(j.model_name)
            shutil.rmtree(j.run_dir, ignore_errors=True)


def zip_folder(folder: Path, path: Path) -> Path:
    """a model folder -> a zip whose entries sit under the folder's name (unzipped: a folder `load_vae` takes)"""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"{folder.name}/{f.relative_to(folder).as_posix()}")
    return path


def rss_mb(pid: int) -> float:
    """a process's resident memory in MB (Linux's /proc; 0 where there is none)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
