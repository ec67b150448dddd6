"""Gradio sessions that cost what they use: the page's per-block config is built on demand, not up front.

Gradio 6 gives every API call made without a `session_hash` (a plain HTTP client, `curl`) a new session, and
`gradio.state_holder.SessionState.__init__` builds `config_for_block` for *every block of the page* (~150 here:
about 60 µs each, 7-10 ms per call, on the event loop). Gradio only reads that full table for a deep link
(`/gradio_api/deep_link`); an event reads and writes the entries of its own inputs and outputs, and
`_update_value_in_config` already builds a missing entry itself. `LazySessionState` therefore starts with an
empty table and fills in the rest, in page order, only when a deep link asks for all of it: same content,
measured in docs/PERFORMANCE.md. The values an event writes into entries not built yet (each input and output,
~0.15 ms an entry: 6 ms for the sliders' 43 inputs) are kept aside and written in when the table is built.
`install()` swaps it in for the `gradio` version this app pins; for any other version it changes nothing.
"""

import logging
import os
from copy import copy

import gradio
import gradio.state_holder as state_holder

log = logging.getLogger("vae_demo.app")
SUPPORTED = ("6.",)  # the SessionState layout this was written against (gradio 6.31)
_Eager = state_holder.SessionState


class LazySessionState(_Eager):
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


def install() -> bool:
    """Use LazySessionState for every session Gradio creates from now on; False (and nothing changed) where the
    installed gradio is not one this was checked against."""
    if state_holder.SessionState is LazySessionState:
        return True
    eager = _Eager.__init__.__code__.co_names
    if not gradio.__version__.startswith(SUPPORTED) or not {"blocks_config", "config_values", "state_data"} <= set(eager):
        log.info("gradio %s: keeping Gradio's own SessionState", gradio.__version__)
        return False
    state_holder.SessionState = LazySessionState
    return True
