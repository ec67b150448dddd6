"""A Gradio start-up that builds its web app once, not four times.

Gradio 6 builds the whole FastAPI app (`gradio.routes.App.create_app`: ~80 routes, a pydantic model for each of
their parameters) in `gr.Blocks.__init__` (which sets up the default queue), when the `with` block exits, again in
`Blocks.queue()`, and once more in `launch()`, which keeps only the last. Each build costs about the same whatever
the page (~0.1 s here, see docs/PERFORMANCE.md), so the three that `launch()` throws away are a fixed tax on the
cold start that a server pays before its first answer. `deferred_app()` skips them while the page is built:
`demo.app` stays None until `launch()` builds it, as it always did (`gr.mount_gradio_app` builds its own). For any
other Gradio version it changes nothing.
"""

import contextlib
import logging
import threading

import gradio
from gradio import routes

log = logging.getLogger("vae_demo.app")
SUPPORTED = ("6.",)  # the Blocks.__init__ / __exit__ / queue() / launch() sequence this was written against (gradio 6.31)
_lock = threading.Lock()


@contextlib.contextmanager
def deferred_app():
    """While the page is built and its queue set up, Blocks.__init__, __exit__ and queue() leave `demo.app` unbuilt."""
    if not gradio.__version__.startswith(SUPPORTED):
        log.info("gradio %s: the web app is built as Gradio builds it", gradio.__version__)
        yield
        return
    with _lock:
        real = routes.App.__dict__["create_app"]
        routes.App.create_app = staticmethod(lambda blocks, *args, **kwargs: None)
        try:
            yield
        finally:
            routes.App.create_app = real
