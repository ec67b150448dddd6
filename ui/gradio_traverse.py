"""Gradio's walk over an event's outputs without a coroutine for every value in them.

After every event, Gradio looks for files in each output (`processing_utils.async_move_files_to_cache`, on the
server's event loop) with `gradio_client.utils.async_traverse`: a recursive coroutine that copies the value and
awaits itself once for every dict, list and number in it. `/sample`'s latents, 64 rows of 32 numbers, are 2,100
awaits: about 2 ms of the event loop's time per call, with the GIL held, while the next request's model call waits
for it (docs/PERFORMANCE.md). `async_traverse` below gives the same copy and calls `func` on the same roots in the
same order, but walks the value with plain loops and awaits only `func`, once for each root (a file). When the
test for a root is Gradio's `is_file_obj_with_meta`, which only a dict can pass, it is not asked about the numbers
and strings: 2,100 calls fewer for those latents.

`install()` swaps it in only for the gradio_client release whose function it reproduces, checked by a fingerprint
of that function's source; with any other release Gradio's own runs.
"""

import hashlib
import inspect
import logging
from typing import Any, Callable

from gradio_client import utils as client_utils

log = logging.getLogger("vae_demo.app")
# sha256 of gradio_client 2.7.2's async_traverse and is_file_obj_with_meta sources, one after the other (its first
# 16 hex digits): the walk reproduced below and the test for a file it relies on
FINGERPRINT = "14b1231363fd58a2"
_CONTAINERS = (dict, list, tuple)
_IS_FILE = client_utils.is_file_obj_with_meta  # false for anything but a dict (its first clause)
_ORIGINAL = client_utils.async_traverse  # gradio_client's own walk, as this module found it


def fingerprint(walk: Callable, is_file: Callable) -> str:
    return hashlib.sha256((inspect.getsource(walk) + inspect.getsource(is_file)).encode()).hexdigest()[:16]


def supported() -> bool:
    """Whether the installed gradio_client's walk and file test are the ones this module was checked against."""
    walk = client_utils.async_traverse
    try:
        return fingerprint(_ORIGINAL if walk is async_traverse else walk, _IS_FILE) == FINGERPRINT
    except (OSError, TypeError):  # no source shipped: not the release this was checked against
        return False


async def async_traverse(json_obj: Any, func: Callable, is_root: Callable[[Any], bool]) -> Any:
    """A copy of json_obj (dicts and lists new, tuples made lists, anything else as it is) in which every node that
    is_root accepts is replaced by `await func(node)`, in depth-first order; is_root sees every node, as in Gradio's."""
    if is_root(json_obj):
        return await func(json_obj)
    if not isinstance(json_obj, _CONTAINERS):
        return json_obj
    slots = []  # (new container, key or index, root), depth-first: the order Gradio awaits func in
    ask_all = is_root is not _IS_FILE  # Gradio's file test is false for anything that is not a dict

    def copy(obj):
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
                value = copy(value)
            new[key] = value
        return new

    out = copy(json_obj)
    for container, key, root in slots:
        container[key] = await func(root)
    return out


def install() -> bool:
    """Use async_traverse above for Gradio's walks (it looks the function up in gradio_client.utils on every call).
    -> whether it is in use; a gradio_client release other than the one it was checked against keeps its own."""
    if client_utils.async_traverse is async_traverse:
        return True
    if client_utils.is_file_obj_with_meta is not _IS_FILE:  # replaced since this module was imported
        return False
    if not supported():
        log.warning("gradio_client's async_traverse is not the one ui/gradio_traverse.py was checked against; "
                    "Gradio's own walk over event outputs stays in use.")
        return False
    client_utils.async_traverse = async_traverse
    return True
