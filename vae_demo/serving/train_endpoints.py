"""The DemoService's handlers for training a model in the app (/train, /stop_training): settings and images checked
with a sentence each, the run handed to the server's one line of runs (serving/training_jobs.py), and a snapshot of a
run for the page to draw. Kept apart from service.py so each file stays about one thing; DemoService inherits them."""

import json
import threading
from typing import Optional

from vae_demo.hub.loading import CHECKPOINTS_DIR
from vae_demo.imaging.image_sets import TrainInputError, read_images
from vae_demo.imaging.uploads import ImageError, confined_path
from vae_demo.models.recipe import check_settings
from vae_demo.serving.registry import current_owner
from vae_demo.serving.training_jobs import Job, TrainingJobs

_jobs_lock = threading.Lock()
# A run of the app's own trainer, recorded (how: its README), that the Train tab shows before a visitor trains: the
# loss terms and the last picture of the run. It holds no weights, so it is not a model.
RECORDED_RUN = CHECKPOINTS_DIR / "recorded-run"


def _paths(images) -> list:
    """what Gradio or a caller passes for files (None, a path, a FileData dict, a list of them) -> paths"""
    if images is None:
        return []
    items = images if isinstance(images, (list, tuple)) else [images]
    out = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else getattr(item, "path", item)
        if path:
            out.append(str(path))
    return out


class TrainEndpoints:
    @property
    def jobs(self) -> TrainingJobs:
        with _jobs_lock:
            if getattr(self, "_jobs", None) is None:
                self._jobs = TrainingJobs(self.registry, self.gif_dir / "runs")
            return self._jobs

    def start_training(self, images=None, source="digits", latent_dim=16, beta=1.0, seconds=60, image_size=32, seed=0,
                       owner: Optional[str] = None) -> Job:
        """/train: check the settings (and read the visitor's images, in memory) -> the run, in line"""
        self.calls["train"] += 1
        settings = check_settings(source, latent_dim, beta, seconds, image_size, seed)
        own = None
        if settings.source == "images":
            paths = _paths(images)
            if self.upload_roots is not None:
                try:
                    paths = [str(confined_path(p, self.upload_roots)) for p in paths]
                except ImageError as e:
                    raise TrainInputError(str(e)) from None
            own = read_images(paths, settings.image_size)
        job = self.jobs.submit(owner if owner is not None else current_owner() or "", settings,
                               own.images if own is not None else None)
        job.message = f"Training on {own.summary()}." if own is not None else ""
        return job

    def recorded_run(self) -> Optional[dict]:
        """-> the recorded run: {"rows": its loss rows, "preview": its last picture's path, "run": its settings and
        what it did (training.json)}, or None where there is none"""
        try:
            return {"rows": json.loads((RECORDED_RUN / "training_log.json").read_text()),
                    "preview": str(RECORDED_RUN / "preview.png") if (RECORDED_RUN / "preview.png").is_file() else None,
                    "run": json.loads((RECORDED_RUN / "training.json").read_text())}
        except (OSError, ValueError):
            return None

    def stop_training(self, owner: Optional[str] = None) -> bool:
        """/stop_training: the visitor's run stops and keeps what it learned -> whether they had one"""
        return self.jobs.stop(owner if owner is not None else current_owner() or "")

    def training_snapshot(self, job: Job) -> dict:
        """what the page shows of a run now"""
        rows = list(job.rows)
        return {"state": job.state, "place": self.jobs.place(job), "rows": rows, "preview": job.preview,
                "message": job.message, "model": job.model_name, "zip": job.zip_path, "settings": job.settings.to_dict(),
                "outcome": dict(job.outcome), "elapsed": rows[-1]["t"] if rows else 0.0,
                "first_preview_after": job.first_preview_after}
