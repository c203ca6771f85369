"""Stopping cleanly on SIGTERM (preemption) and SIGINT (Ctrl-C).

While training, both signals only set a flag; the loop finishes the step in flight, saves a
checkpoint at that step and returns. A second SIGINT aborts at once (KeyboardInterrupt), for
when the save itself hangs.

With several processes a signal may reach only some of them, yet all must stop at the same
step to write one consistent checkpoint: the flags are combined across processes (a small
all-gather over the devices) every `sync_every` steps, the same steps everywhere.
With one process the flag is read after every step at no cost.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A context manager that turns SIGTERM / SIGINT into `should_stop(step)` returning True."""

    def __init__(self, sync_every: int = 1):
        self.sync_every = sync_every
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        else:
            log.warning("Not in the main thread: SIGTERM / SIGINT will not stop training cleanly.")
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        del frame
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        log.warning(
            "%s received: saving a checkpoint after the current step, then stopping.", self.received
        )

    def should_stop(self, step: int) -> bool:
        """Whether every process should stop after `step` (the same answer on all of them)."""
        if jax.process_count() == 1:
            return self.received is not None
        if step % self.sync_every:
            return False
        flags = multihost_utils.process_allgather(np.int32(self.received is not None))
        return bool(np.any(flags))
