"""Worker processes that die with their parent: training must not go on (and write into the cache) for a dead run."""

from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5
_watching: list[int] = []  # the parent this process watches (at most one)


def die_with_parent(parent_pid: int) -> None:
    """In a worker process: exit at once when `parent_pid` is no longer its parent (it died and we were adopted)."""
    if _watching or os.getpid() == parent_pid:
        return
    _watching.append(parent_pid)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()

