"""Gradio's queue without its 1 ms poll: the loop that starts queued events wakes when there is something to do.

Gradio 6's `Queue.start_processing` runs on the server's event loop. Whenever no event waits, or none can start, it
sleeps 1 ms and looks again: a thousand wake-ups a second, each one taking the GIL to run Python. A request that
computes in a worker thread gives the GIL up at every torch op and must win it back from the loop, so the poll
slows every model call. Measured with /reconstruct's handler: 10.9 ms with the 1 ms poll, 9.4 ms with a 10 ms one
(docs/PERFORMANCE.md). A longer poll alone would make every new call wait for the next look.

`wake_on_change(queue)` makes the loop sleep until an event is pushed or a job ends. Nothing else lets a waiting
event start: a free slot or a free place in its concurrency group both come from a job that ends. Apart from the
sleep, the loop is Gradio's own. It still looks every SAFETY_NET_S seconds, in case some path changes the queue
without going through those two.

This works only for the Gradio release whose loop it copies, checked by a fingerprint of that loop's source. With
any other release, Gradio's own loop runs.
"""

import asyncio
import hashlib
import inspect
import logging
import time

from gradio import queueing
from gradio.utils import run_coro_in_background, set_task_name

log = logging.getLogger("vae_demo.app")
# sha256 of gradio 6.31.0's Queue.start_processing source (its first 16 hex digits): the loop copied below
FINGERPRINT = "d65be5a5cbed97d7"
SAFETY_NET_S = 0.02  # the longest the loop sleeps without a wake-up: 50 looks a second, not 1,000


def supported() -> bool:
    """Whether the installed Gradio's loop is the one copied here."""
    try:
        source = inspect.getsource(queueing.Queue.start_processing)
    except (OSError, TypeError):  # no source shipped (a frozen build): not the release this was checked against
        return False
    return hashlib.sha256(source.encode()).hexdigest()[:16] == FINGERPRINT


def wake_on_change(queue: queueing.Queue) -> bool:
    """Before launch(): `queue` (a Blocks' `_queue`) starts events as they come, without polling. -> whether it
    does (False, and Gradio's loop unchanged, for a Gradio release this was not written against)."""
    if not supported():
        log.info("this gradio's queue loop is not the one ui/gradio_queue.py copies: it keeps its 1 ms poll")
        return False
    # made by the loop when it starts (an asyncio.Event belongs to one event loop, and a relaunch runs a new one);
    # set on the event loop only: push and process_events run there
    changed = asyncio.Event()
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
                queue.looks += 1  # how often the loop looked at the queue (tests/test_gradio_queue.py)
                changed.clear()  # cleared before looking: a push while the loop looks sets it for the next idle()
                if len(self) == 0:
                    await idle()
                    continue

                if None not in self.active_jobs:
                    await idle()
                    continue

                # Using mutex to avoid editing a list in use
                async with self.delete_lock:
                    event_batch = self.get_events()

                if event_batch:
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
                    process_event_task = run_coro_in_background(
                        self.process_events, events, batch, start_time, fn
                    )
                    set_task_name(
                        process_event_task,
                        events[0].session_hash,
                        fn._id,
                        events[0]._id,
                        batch,
                    )

                    self._asyncio_tasks.add(process_event_task)
                    process_event_task.add_done_callback(self._asyncio_tasks.discard)
                    if self.live_updates:
                        self.broadcast_estimations(concurrency_id)
                else:
                    await idle()
        finally:
            self.stopped = True
            self._cancel_asyncio_tasks()

    queue.push, queue.process_events, queue.start_processing = pushed, processed, start_processing
    queue.looks = 0
    return True
