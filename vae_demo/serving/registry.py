"""The models a running app serves: the bundled ones, loaded at start and shared by every visitor, and run-time
models (loaded by a visitor by repo id), which belong to the visitors who loaded them and are capped.

A visitor is an *owner*: a token the page keeps in the browser (so a reload keeps its models), or an API client's
Gradio session. The owner of the request being served is a context variable (`as_owner`), set by the app around
each handler, so that every lookup by name sees the bundled models plus that owner's own.

Caps, from the environment (README, "A link shared with strangers"):
- VAE_DEMO_MAX_SESSION_MODELS: run-time models one owner may hold at once (default 3); one more is refused.
- VAE_DEMO_MAX_RUNTIME_MB: megabytes of run-time weights the server holds in all (default 1024, sized for a free
  Space's 16 GB beside the app's own ~1.2 GB); the least recently used run-time model is evicted first, and its
  owners are told so when they next ask for it. Bundled models are never evicted.
- VAE_DEMO_ALLOWED_REPOS: comma-separated patterns (fnmatch: `madebyollin/*`); unset: any repo id.
"""

import contextlib
import fnmatch
import os
import threading
import time
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from vae_demo.device import serve_in_bf16
from vae_demo.serving.edits import directions_of
from vae_demo.hub.loading import ModelLoadError, load_vae
from vae_demo.models.precision import vae_in_bf16
from vae_demo.models.protocol import LoadedModel

_owner: ContextVar[Optional[str]] = ContextVar("vae_demo_owner", default=None)
DEFAULT_SESSION_MODELS = 3
DEFAULT_RUNTIME_MB = 1024
TRAINED = "trained:"  # the source of a model trained in the app (its folder lives with the server's runs)
SETTINGS_SHOWN = ("source", "dataset", "latent_dim", "beta", "seconds", "image_size", "seed", "images_seen",
                  "seconds_trained", "stopped", "steps")


def _settings_of(outcome: dict) -> dict:
    """what /models says about a trained model: its settings and what the run did"""
    return {k: outcome[k] for k in SETTINGS_SHOWN if k in outcome}


@contextlib.contextmanager
def as_owner(owner: Optional[str]):
    """Around one request: the visitor whose run-time models the lookups may see"""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


def current_owner() -> Optional[str]:
    return _owner.get()


def model_megabytes(vae) -> float:
    """the weights (and buffers) a model holds, in MB"""
    tensors = [*vae.parameters(), *vae.buffers()] if isinstance(vae, torch.nn.Module) else []
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


@dataclass
class RuntimeModel:
    model: LoadedModel
    megabytes: float
    owners: set = field(default_factory=set)
    source: str = ""
    last_used: float = field(default_factory=time.monotonic)
    trained: Optional[dict] = None  # a model trained in the app: its settings and what the run did (training.json)


@dataclass
class Limits:
    session_models: int = DEFAULT_SESSION_MODELS
    runtime_mb: float = DEFAULT_RUNTIME_MB
    allowed: tuple = ()  # repo id patterns; empty: any
    load_box: bool = True  # False: nobody may load a model at run time (--no-load-box)

    @classmethod
    def from_env(cls, load_box: bool = True) -> "Limits":
        def number(name, default, kind):
            raw = os.environ.get(name, "").strip()
            try:
                value = kind(raw) if raw else default
            except ValueError:
                raise SystemExit(f"{name} must be a number; got {raw!r}.") from None
            if value < 0:
                raise SystemExit(f"{name} must be 0 or more; got {raw!r}.")
            return value

        allowed = tuple(p.strip() for p in os.environ.get("VAE_DEMO_ALLOWED_REPOS", "").split(",") if p.strip())
        return cls(number("VAE_DEMO_MAX_SESSION_MODELS", DEFAULT_SESSION_MODELS, int),
                   number("VAE_DEMO_MAX_RUNTIME_MB", DEFAULT_RUNTIME_MB, float), allowed, load_box)


class ModelRegistry:
    def __init__(self, device: torch.device, limits: Optional[Limits] = None):
        self.device = device
        self.limits = limits or Limits()
        self._models: dict = {}  # bundled (and --model) models: every visitor's
        self._runtime: "OrderedDict[str, RuntimeModel]" = OrderedDict()  # least recently used first
        self._evicted: dict = {}  # owner -> {name: source} of their models evicted to make room
        self._trained: dict = {}  # name -> (folder, outcome, owner) of models trained in the app, while their folders last
        self._lock = threading.Lock()

    # --- loading --------------------------------------------------------------------------
    def load(self, source: str, allow_local: bool = True, revision: Optional[str] = None) -> LoadedModel:
        """A model every visitor sees (the app's start, --model): load it, or return the one already loaded."""
        source = str(source or "").strip()
        with self._lock:
            if source in self._models:
                return self._models[source]
        vae = self._fetch(source, revision=revision, allow_local=allow_local)
        with self._lock:
            self._models.setdefault(vae.info.name, vae)
            return self._models[vae.info.name]

    def _fetch(self, source: str, **kw) -> LoadedModel:
        """load_vae on this server's device, as the server serves it: in bfloat16 where the model's config allows it
        (`serve_bf16`) and the CPU multiplies bf16 natively (vae_demo/device.py)"""
        vae = load_vae(source, device=self.device, **kw)
        if getattr(vae.config, "serve_bf16", False) and serve_in_bf16(self.device):  # photo models have no such field
            vae = vae_in_bf16(vae)
        return vae

    def load_for(self, source: str, owner: Optional[str]) -> LoadedModel:
        """A visitor's load by repo id (or a bundled name): the model joins that owner's picker only. The same repo
        loaded by two owners is held once. Refused with a sentence: over the owner's cap, a repo outside the
        allow-list, a model larger than the server's whole budget, loading switched off."""
        source = str(source or "").strip()
        with self._lock:
            if source in self._models:  # a bundled model: everyone has it already
                return self._models[source]
        if source.startswith(TRAINED):  # one of the owner's trained models, evicted: loaded again from its folder
            name = source[len(TRAINED):]
            folder, outcome, trainer = self._trained.get(name, (None, None, None))
            if trainer != (owner or ""):  # only its trainer may bring it back
                raise ModelLoadError(f"{source!r} is not a model you trained here.")
            if not folder.is_dir():
                raise ModelLoadError(f"{name} was trained here but its files are gone (this server keeps the latest "
                                     "runs only); train it again, or load the zip you downloaded with app.py --model.")
            return self.add_trained(folder, name, owner, outcome)
        if not self.limits.load_box:
            raise ModelLoadError("Loading models is switched off on this server; pick one of the models listed.")
        if self.limits.allowed and not any(fnmatch.fnmatchcase(source, p) for p in self.limits.allowed):
            raise ModelLoadError(f"{source!r} is not among the models this server may load "
                                 f"({', '.join(self.limits.allowed)}).")
        owner = owner or ""
        with self._lock:
            entry = self._runtime.get(source) or next((e for e in self._runtime.values() if e.source == source), None)
            if entry is None or owner not in entry.owners:
                self._check_session_cap(owner)
            if entry is not None:
                entry.owners.add(owner)
                self._touch(entry)
                self._evicted.get(owner, {}).pop(entry.model.info.name, None)
                return entry.model
        vae = self._fetch(source, allow_local=False)
        mb = model_megabytes(vae)
        with self._lock:
            name = vae.info.name
            if name in self._models:
                return self._models[name]
            if mb > self.limits.runtime_mb:
                raise ModelLoadError(f"{name} holds {mb:.0f} MB of weights, more than this server keeps for visitors' "
                                     f"models in all ({self.limits.runtime_mb:.0f} MB, VAE_DEMO_MAX_RUNTIME_MB).")
            self._check_session_cap(owner)
            entry = self._runtime.get(name)
            if entry is None:  # (another owner may have loaded it meanwhile)
                self._make_room(mb)
                entry = self._runtime[name] = RuntimeModel(vae, mb, set(), source)
            entry.owners.add(owner)
            self._touch(entry)
            self._evicted.get(owner, {}).pop(name, None)
            return entry.model

    def check_room(self, owner: Optional[str]) -> None:
        """ModelLoadError with a sentence if the owner holds as many run-time models as they may"""
        with self._lock:
            self._check_session_cap(owner or "")

    def add_trained(self, folder: Path, name: str, owner: Optional[str], outcome: dict) -> LoadedModel:
        """A model trained in the app (vae_demo/serving/training_jobs.py): a run-time model of its trainer, named
        `name`, capped and evicted like one loaded by repo id; evicted, one pick loads it again from `folder`."""
        owner = owner or ""
        vae = self._fetch(str(folder), allow_local=True)
        vae.info.name, vae.info.source = name, TRAINED + name
        mb = model_megabytes(vae)
        with self._lock:
            self._trained[name] = (Path(folder), outcome, owner)
            entry = self._runtime.get(name)
            if entry is None or owner not in entry.owners:
                self._check_session_cap(owner)
            if entry is None:
                self._make_room(mb)
                entry = self._runtime[name] = RuntimeModel(vae, mb, set(), TRAINED + name, trained=outcome)
            entry.owners.add(owner)
            self._touch(entry)
            self._evicted.get(owner, {}).pop(name, None)
            return entry.model

    def forget_trained(self, name: str) -> None:
        """a trained model's folder is being deleted: it can no longer be loaded again once evicted"""
        with self._lock:
            self._trained.pop(name, None)

    def trained_settings(self, name: str) -> Optional[dict]:
        with self._lock:
            entry = self._runtime.get(name)
            return entry.trained if entry is not None else None

    def unload_for(self, name: str, owner: Optional[str]) -> bool:
        """The owner lets go of a run-time model; it is dropped when nobody holds it. -> whether they held it"""
        with self._lock:
            entry = self._runtime.get(name)
            if entry is None or (owner or "") not in entry.owners:
                return False
            entry.owners.discard(owner or "")
            if not entry.owners:
                del self._runtime[name]
            return True

    def _check_session_cap(self, owner: str) -> None:
        held = [n for n, e in self._runtime.items() if owner in e.owners]
        if len(held) >= self.limits.session_models:
            raise ModelLoadError(f"You already hold {len(held)} loaded models ({', '.join(held)}), the most one visitor "
                                 f"may hold on this server (VAE_DEMO_MAX_SESSION_MODELS). Unload one first.")

    def _make_room(self, mb: float) -> None:
        """evict the least recently used run-time models until `mb` more fits (under the lock)"""
        while self._runtime and sum(e.megabytes for e in self._runtime.values()) + mb > self.limits.runtime_mb:
            name, entry = self._runtime.popitem(last=False)
            for o in entry.owners:
                self._evicted.setdefault(o, {})[name] = entry.source

    def _touch(self, entry: RuntimeModel) -> None:
        entry.last_used = time.monotonic()
        self._runtime.move_to_end(entry.model.info.name)

    # --- lookups --------------------------------------------------------------------------
    def get(self, name: Optional[str] = None) -> LoadedModel:
        """A model by name, as the current owner sees it; None or "" -> the first bundled model."""
        owner = current_owner() or ""
        with self._lock:
            if not self._models and not self._runtime:
                raise ModelLoadError("No model is loaded.")
            if name is None or str(name).strip() == "":
                return next(iter(self._models.values())) if self._models else next(iter(self._runtime.values())).model
            if name in self._models:
                return self._models[name]
            entry = self._runtime.get(name)
            if entry is not None and owner in entry.owners:
                self._touch(entry)
                return entry.model
            source = self._evicted.get(owner, {}).get(name)
        if source is not None:
            raise ModelLoadError(f"{name} was unloaded to make room for other visitors' models (this server keeps "
                                 f"{self.limits.runtime_mb:.0f} MB of them). Press Load again to bring it back: {source}")
        raise ModelLoadError(f"No model named {name!r} is loaded; loaded: {', '.join(self.names())}.")

    def evicted(self, owner: Optional[str] = None) -> dict:
        """{name: source} of the owner's run-time models that were evicted"""
        with self._lock:
            return dict(self._evicted.get(owner if owner is not None else current_owner() or "", {}))

    def names(self, owner: Optional[str] = None) -> list:
        """the bundled models, then the owner's (default: the current owner's) run-time models"""
        owner = owner if owner is not None else current_owner() or ""
        with self._lock:
            return list(self._models) + [n for n, e in self._runtime.items() if owner in e.owners]

    def bundled_names(self) -> list:
        with self._lock:
            return list(self._models)

    def is_runtime(self, name: str) -> bool:
        with self._lock:
            return name in self._runtime

    def runtime_megabytes(self) -> float:
        with self._lock:
            return sum(e.megabytes for e in self._runtime.values())

    def describe(self) -> list:
        """One JSON-ready dict per model the current owner sees, for /models and the UI."""
        owner = current_owner() or ""
        with self._lock:
            items = list(self._models.items()) + [(n, e.model) for n, e in self._runtime.items() if owner in e.owners]
        return [
            {
                "name": name,
                "capabilities": sorted(v.capabilities),
                "latent_dim": v.config.latent_dim,
                "image_size": v.config.image_size,
                "channels": v.config.channels,
                "likelihood": v.config.likelihood,
                "beta": v.config.beta,
                "dataset": v.config.dataset,
                "attributes": [d.name for d in directions_of(v)],
                "conditional": bool(v.config.num_labels),
                "source": v.info.source,
                "device": str(self.device),
                "runtime": self.is_runtime(name),
                "trained_in_app": self.trained_settings(name) is not None,
                **({"training": _settings_of(self.trained_settings(name))} if self.trained_settings(name) else {}),
            }
            for name, v in items
        ]
