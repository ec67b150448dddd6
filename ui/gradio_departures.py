"""Every place where this app departs from stock Gradio, in one module. `VAE_DEMO_STOCK_GRADIO=1` turns them all off;
`VAE_DEMO_STOCK_GRADIO=queue-wake-ups,output-walk` (names with dashes) turns off those alone, to measure one.

Each departure serves a measured target of `benchmarks/bench.py`. docs/PERFORMANCE.md ("Departures from stock
Gradio") lists what each buys and how it was measured. Each one is guarded by a fingerprint: the sha256 of the exact
Gradio source it replaces or relies on. A Gradio release whose source differs keeps its own behaviour, with a log
line, so upgrading Gradio never runs a copy made for another release.

    apply(demo)      once, by app.create_demo, after the page and its queue are built: the global patches
                     (sessions, the output walk, the environment defaults) and the queue's wake-ups
    answered(...)    registers a handler whose outputs are postprocessed in its own thread (or, with the switch on,
                     a plain Gradio event)
    png_file(img)    an event's output image written straight into Gradio's cache (or the image, for Gradio to save)
    sketch_picture() the sketchpad's pictures decoded when first used (or None: Gradio decodes them)

| departure          | replaces or relies on                                   | serves                                  |
|--------------------|---------------------------------------------------------|-----------------------------------------|
| queue wake-ups     | gradio.queueing.Queue.start_processing                  | every endpoint's latency, idle CPU      |
| output walk        | gradio_client.utils.async_traverse, is_file_obj_with_meta | /sample, /interpolate (their latents) |
| lazy sessions      | gradio.state_holder.SessionState                        | sessionless API calls (plain HTTP)      |
| in-handler outputs | gradio.blocks.Blocks.postprocess_data                   | every endpoint's latency                |
| PNGs into cache    | gradio.processing_utils.save_pil_to_cache, hash_bytes   | /sample, /reconstruct, /traverse        |
| sketch decode      | gradio ImageEditor.convert_and_format_image             | the sketchpad's per-stroke answer       |
| analytics summary  | gradio.queueing.Queue.__init__ (its cache frequency)    | 16-client throughput                    |
| matplotlib Agg     | gradio.utils.MatplotlibBackendMananger                  | cold start (the first answer)           |
"""

import asyncio
import functools
import hashlib
import inspect
import io
import logging
import math
import os
import threading
import time
from copy import copy
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr
import gradio.state_holder as state_holder
from gradio import blocks, processing_utils, queueing
from gradio import utils as gradio_utils
from gradio.components.image_editor import ImageEditor
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder, run_coro_in_background, set_task_name
from gradio_client import utils as client_utils
from PIL import Image

from vae_demo.imaging.png import png_bytes

log = logging.getLogger("vae_demo.app")
SWITCH = "VAE_DEMO_STOCK_GRADIO"
# sha256 of the Gradio sources each departure replaces or relies on (first 16 hex digits), for gradio 6.31.0 and
# gradio_client 2.7.2. fingerprint_of(name) computes the installed release's; tests/test_gradio_departures.py
# checks they match, so a version bump says at once which departures it switched off.
FINGERPRINTS = {
    "queue wake-ups": "d65be5a5cbed97d7",
    "output walk": "14b1231363fd58a2",
    "lazy sessions": "cf7fe46100804541",
    "in-handler outputs": "5f6a865a3446ba0b",
    "PNGs into cache": "38406760cea9a617",
    "sketch decode": "006b0e88a30b52d6",
    "analytics summary": "8f39a4352e7ca36a",
    "matplotlib Agg": "de9f0baab22d8525",
}
_GRADIOS_WALK = client_utils.async_traverse  # gradio_client's own walk, as this module found it
_GRADIOS_SESSION = state_holder.SessionState


def _sources() -> dict:
    return {
        "queue wake-ups": (queueing.Queue.start_processing,),
        "output walk": (_GRADIOS_WALK, client_utils.is_file_obj_with_meta),
        "lazy sessions": (_GRADIOS_SESSION,),
        "in-handler outputs": (blocks.Blocks.postprocess_data,),
        "PNGs into cache": (processing_utils.save_pil_to_cache, processing_utils.hash_bytes),
        "sketch decode": (ImageEditor.convert_and_format_image,),
        "analytics summary": (queueing.Queue.__init__,),
        "matplotlib Agg": (gradio_utils.MatplotlibBackendMananger,),
    }


def stock(name: Optional[str] = None) -> bool:
    """Whether VAE_DEMO_STOCK_GRADIO asks for stock Gradio: every departure off ("1"), or the one `name` among a list
    of departures' names written with dashes ("queue-wake-ups,png-into-cache")."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    return name is not None and name.lower().replace(" ", "-") in {v.strip() for v in value.split(",")}


def fingerprint_of(name: str) -> Optional[str]:
    try:
        source = "".join(inspect.getsource(obj) for obj in _sources()[name])
    except (OSError, TypeError):  # no source shipped (a frozen build): not the release this was checked against
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _matches(name: str) -> bool:
    ok = fingerprint_of(name) == FINGERPRINTS[name]
    if not ok:
        log.warning("gradio's source for %r is not the one ui/gradio_departures.py was checked against: "
                    "stock Gradio there", name)
    return ok


def active(name: str) -> bool:
    """Whether the departure `name` is in use: the switch is off and Gradio's source is the one it was written for."""
    return not stock(name) and _matches(name)


def apply(demo: gr.Blocks) -> dict:
    """Apply the global departures and the queue's to a built page (before launch). -> {name: applied}"""
    applied = {name: active(name) for name in FINGERPRINTS}
    if applied["lazy sessions"]:
        state_holder.SessionState = LazySessionState
    if applied["output walk"]:
        client_utils.async_traverse = async_traverse
    if applied["queue wake-ups"]:
        wake_on_change(demo._queue)
    if applied["analytics summary"] and "GRADIO_ANALYTICS_CACHE_FREQUENCY" not in os.environ:
        # the queue's monitoring summary (a pandas frame of up to 10,000 past events, then percentiles) is remade
        # after every event by default; every 100 events is fresh enough for /monitoring/summary
        demo._queue.ANAYLTICS_CACHE_FREQUENCY = 100
    if applied["matplotlib Agg"]:
        # Gradio wraps every event in matplotlib.get_backend(), which with no backend chosen imports pyplot and probes
        # for a display in the first answer. A server draws off-screen: Agg, as charts.py draws. A setting wins.
        os.environ.setdefault("MPLBACKEND", "agg")
    return applied


# --- in-handler outputs -------------------------------------------------------------------------------------
def answered(event, fn: Callable, inputs, outputs: list, **kw):
    """Register `fn` on `event` (a listener such as `button.click` or a `.then`, or a list of triggers for `gr.on`).
    Departure: its outputs are postprocessed in the handler's own worker thread (`postprocessed`) and Gradio's
    `postprocess_data` is skipped (postprocess=False), instead of a thread hop per output and per cache move.
    -> the event's dependency, for `.then` / `.success`."""
    if active("in-handler outputs"):
        fn, kw = postprocessed(fn, outputs), {**kw, "postprocess": False}
    if isinstance(event, (list, tuple)):
        return gr.on(list(event), fn, inputs, outputs, **kw)
    return event(fn, inputs, outputs, **kw)


def postprocessed(fn: Callable, outputs: list) -> Callable:
    """`fn` whose return values are put through each output component's own `postprocess`, as Gradio's
    postprocess_data would. For handlers that return plain values: a gr.skip() passes through, and a gr.State output is
    kept as it is (Gradio stores it before any of this)."""

    def one(component, value):
        if getattr(component, "stateful", False):  # whatever it holds, even a dict with a "value" key
            return value
        if isinstance(value, dict) and value.get("__type__") == "update":
            if "value" in value:
                raise TypeError(f"{fn.__name__}: an update with a value needs Gradio's own postprocessing")
            return value
        if isinstance(component, gr.JSON) and plain_numbers(value):
            return value  # what JsonData's round trip would give back, without pydantic over every number
        value = component.postprocess(value)
        return value.model_dump() if hasattr(value, "model_dump") else value  # GradioModel, GradioRootModel

    @functools.wraps(fn)
    def run(*args, **kwargs):
        values = fn(*args, **kwargs)
        if len(outputs) == 1:
            return one(outputs[0], values)
        return [one(c, v) for c, v in zip(outputs, values)]

    return run


def plain_numbers(value) -> bool:
    """A list of finite floats or ints, or a list of such lists (the latents /sample and /interpolate return): what
    gr.JSON's postprocess (an orjson round trip, then a pydantic root model) gives back unchanged."""
    if type(value) is not list:
        return False
    rows = value if value and type(value[0]) is list else [value]
    for row in rows:
        if type(row) is not list:
            return False
        for v in row:
            if type(v) is float:
                if not math.isfinite(v):
                    return False
            elif type(v) is not int:
                return False
    return True


# --- PNGs into the cache ----------------------------------------------------------------------------------------
def png_file(img: Image.Image):
    """An event's output image -> the path of its PNG in Gradio's cache, where Gradio's own save would put it (a folder
    named by the hash of the bytes), written by vae_demo.imaging.png (Up filter, zlib-ng level 1, run-length strategy)
    rather than by Pillow at level 6; Gradio then finds its copy already there.
    With the departure off, the image itself, for Gradio to save. For an event's answer only: a path kept for later
    (a memoised refresh) could outlive Gradio's cache."""
    if not active("PNGs into cache"):
        return img
    data = png_bytes(img)
    folder = Path(get_upload_folder()) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "image.png"
    if not path.exists():
        staging = folder / f".image-{threading.get_ident()}.png"
        staging.write_bytes(data)
        os.replace(staging, path)  # a concurrent call for the same sheet never sees half a file
    return str(path)


# --- sketch decode ----------------------------------------------------------------------------------------------
def sketch_picture(pad: ImageEditor, file) -> Optional[Image.Image]:
    """For a sketchpad in RGBA mode, one of the pictures the page sends, opened but not decoded: the page sends three
    for every stroke (background, layer, composite) and an answer reads one. The bytes are read now, so no file stays
    open. None where the departure is off or does not apply: Gradio's own convert_and_format_image then runs."""
    if file is None or pad.type != "pil" or pad.image_mode != "RGBA" or not active("sketch decode"):
        return None
    data = Path(file.path).read_bytes() if isinstance(file, FileData) else bytes(file)
    im = Image.open(io.BytesIO(data))  # reads the header (and checks the pixel count) only
    return im if im.mode == "RGBA" else im.convert("RGBA")


# --- lazy sessions ----------------------------------------------------------------------------------------------
class LazySessionState(_GRADIOS_SESSION):
    """Gradio's SessionState whose per-block config table is built on demand. Gradio gives every API call made without
    a session_hash a new session and builds config_for_block for every block of the page (~150 here) in __init__,
    on the event loop. Only a deep link reads the full table; an event reads and writes its own inputs' and outputs'
    entries. So the table starts empty, values an event writes into entries not built yet are kept aside, and the
    rest is built, in page order, when a deep link asks for all of it: the same content (tested)."""

    def __init__(self, blocks):
        self.blocks_config = copy(blocks.default_config)
        self._page_ids = blocks.blocks  # the ids Gradio's eager table covers (not blocks added by a re-render)
        self.config_values = {}
        self._values = {}  # block id -> the last value an event wrote for a block whose entry is not built yet
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    @property
    def components(self):
        built = self.config_values
        table = {}
        for k, block in self.blocks_config.blocks.items():
            if k in built:
                table[k] = built[k]
            elif k in self._page_ids:
                table[k] = self.blocks_config.config_for_block(k, [], block)
        table.update((k, v) for k, v in built.items() if k not in table)
        for k, value in self._values.items():
            if "props" in table.get(k, {}):
                table[k]["props"]["value"] = value
        self._values = {}
        self.config_values = table
        for config in table.values():
            if config:
                yield config

    def _update_value_in_config(self, key: int, value):
        if key in self.config_values:  # built already (a prop update, a deep link): keep it current, as Gradio does
            super()._update_value_in_config(key, value)
        else:
            self._values[key] = value

    def _update_config(self, key: int):  # Gradio rebuilds the entry from the block: a value written before is gone
        self._values.pop(key, None)
        super()._update_config(key)

    def __setitem__(self, key: int, value):
        self._values.pop(key, None)
        super().__setitem__(key, value)


# --- output walk ------------------------------------------------------------------------------------------------
_CONTAINERS = (dict, list, tuple)


async def async_traverse(json_obj: Any, func: Callable, is_root: Callable[[Any], bool]) -> Any:
    """gradio_client's async_traverse without a coroutine for every value. Gradio looks for files in every event's
    outputs on the event loop with a recursive coroutine that awaits itself for every dict, list and number (2,100
    awaits for /sample's 64 latents of 32). This gives the same copy (dicts and lists new, tuples made lists, anything
    else as it is) and awaits `func` on the same roots in the same depth-first order, but walks with plain loops; when
    is_root is Gradio's file test, which only a dict can pass, it is not asked about numbers and strings."""
    if is_root(json_obj):
        return await func(json_obj)
    if not isinstance(json_obj, _CONTAINERS):
        return json_obj
    slots = []  # (new container, key or index, root), depth-first: the order Gradio awaits func in
    ask_all = is_root is not client_utils.is_file_obj_with_meta  # Gradio's file test is false for any non-dict

    def walk(obj):
        if not ask_all and not isinstance(obj, dict) and not any(issubclass(k, _CONTAINERS) for k in set(map(type, obj))):
            return list(obj)  # a row of numbers or strings: no file in it, and nothing in it to copy
        if isinstance(obj, dict):
            new, items = {}, obj.items()
        else:
            new, items = [None] * len(obj), enumerate(obj)
        for key, value in items:
            if (ask_all or isinstance(value, dict)) and is_root(value):
                slots.append((new, key, value))
                value = None
            elif isinstance(value, _CONTAINERS):
                value = walk(value)
            new[key] = value
        return new

    out = walk(json_obj)
    for container, key, root in slots:
        container[key] = await func(root)
    return out


# --- queue wake-ups ---------------------------------------------------------------------------------------------
SAFETY_NET_S = 0.02  # the longest the queue's loop sleeps without a wake-up: 50 looks a second, not 1,000


def wake_on_change(queue: queueing.Queue) -> None:
    """`queue` (a Blocks' `_queue`, before launch) starts events when one is pushed or a job ends, not on a 1 ms poll.
    Gradio's Queue.start_processing sleeps 1 ms and looks again whenever no event can start: a thousand wake-ups a
    second on the event loop, each taking the GIL from the worker threads that run the models. Nothing but a push or
    a job's end lets a waiting event start (a free slot, a free place in its concurrency group), so the loop below,
    Gradio's own apart from its sleep, waits for those; it still looks every SAFETY_NET_S in case another path changes
    the queue."""
    changed = asyncio.Event()  # made again when the loop starts: an asyncio.Event belongs to one event loop
    push, process_events = queue.push, queue.process_events

    async def pushed(*args, **kwargs):
        try:
            return await push(*args, **kwargs)
        finally:
            changed.set()

    async def processed(*args, **kwargs):
        try:
            return await process_events(*args, **kwargs)
        finally:  # its slot and its place in its concurrency group are free now
            changed.set()

    async def idle():
        """Until the next push or job end, or the safety net."""
        try:
            await asyncio.wait_for(changed.wait(), SAFETY_NET_S)
        except asyncio.TimeoutError:
            pass

    async def start_processing() -> None:
        """Gradio's Queue.start_processing, with idle() where it sleeps sleep_when_free."""
        nonlocal changed
        changed = asyncio.Event()
        self = queue
        try:
            while not self.stopped:
                queue.looks += 1  # how often the loop looked at the queue (tests/test_gradio_departures.py)
                changed.clear()  # cleared before looking: a push while the loop looks sets it for the next idle()
                if len(self) == 0 or None not in self.active_jobs:
                    await idle()
                    continue
                async with self.delete_lock:  # Using mutex to avoid editing a list in use
                    event_batch = self.get_events()
                if not event_batch:
                    await idle()
                    continue
                events, batch, concurrency_id = event_batch
                self.active_jobs[self.active_jobs.index(None)] = events
                event_queue = self.event_queue_per_concurrency_id[concurrency_id]
                event_queue.current_concurrency += 1
                start_time = time.time()
                fn = events[0].fn
                event_queue.start_times_per_fn[fn].add(start_time)
                for event in events:
                    if (a := self.event_analytics.get(event._id)) is not None:
                        a["status"] = "processing"
                task = run_coro_in_background(self.process_events, events, batch, start_time, fn)
                set_task_name(task, events[0].session_hash, fn._id, events[0]._id, batch)
                self._asyncio_tasks.add(task)
                task.add_done_callback(self._asyncio_tasks.discard)
                if self.live_updates:
                    self.broadcast_estimations(concurrency_id)
        finally:
            self.stopped = True
            self._cancel_asyncio_tasks()

    queue.push, queue.process_events, queue.start_processing = pushed, processed, start_processing
    queue.looks = 0
