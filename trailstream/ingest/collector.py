"""Pausing Python's cycle collector around work that makes millions of short-lived dicts and tuples and no cycles
(parsing log files, generating demo records): the collector would scan them again and again, in vain.

Only for work that ends: the pause is process-wide, so a long-lived process (the app's server) never pauses it
around a sync, only a parse worker (a process of its own) around each task, and the demo generator while it runs.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Pause the collector for the block; resumes it only if this block paused it (nested pauses keep it paused)."""
    pausing = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if pausing:
            gc.enable()


def without_cycle_collection(task: Callable) -> Callable:
    """`task` run with the collector paused, which resumes (and collects as usual) after it."""

    @functools.wraps(task)
    def run(*args, **kwargs):
        with paused():
            return task(*args, **kwargs)

    return run
