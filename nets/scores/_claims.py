"""Claims on cache keys: processes sharing a cache directory build each key once; the others wait for it.

A claim is an exclusive `flock` on `<cache>/claims/<key>.lock`. The kernel drops it when its process ends, however it
ends, so a crash never leaves a key claimed: the next process to look builds the key itself. Lock files are empty
and kept (removing one would race with a process about to lock it). On a shared filesystem the claims hold across
machines where the filesystem supports `flock` (NFSv4, CephFS; not every FUSE filesystem).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TypeVar

CLAIMS = "claims"  # the directory of lock files, under the cache root
BUILT, FOUND, HELD = "built", "found", "held"  # a key built here, found built by another process, claimed elsewhere

T = TypeVar("T")


@contextmanager
def claim(root: str | Path, key: str, wait: bool) -> Iterator[bool]:
    """Hold the claim on `key` during the body (True); without `wait`, yields False at once if another process
    holds it."""
    directory = Path(root) / CLAIMS
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # drops the lock


def claimed(root: str, key: str, load: Callable[[], Optional[T]], build: Callable[[], T]) -> tuple[str, str, Optional[T]]:
    """Under the claim on `key`: (key, FOUND, what `load` finds), else (key, BUILT, what `build` makes); (key, HELD,
    None) at once when another process holds the claim. `load` returns None for a missing or invalid entry."""
    with claim(root, key, wait=False) as mine:
        if not mine:
            return key, HELD, None
        found = load()
        if found is not None:
            return key, FOUND, found
        return key, BUILT, build()


def share(keys: list[str], run: Callable[[list[str]], Iterable[tuple[str, str, Optional[T]]]], root: str | Path,
          on_wait: Callable[[str], None]) -> Iterator[tuple[str, str, Optional[T]]]:
    """(key, BUILT or FOUND, value) for every key: `run(keys)` calls `claimed` for each key; a key another process
    holds is waited for (on its claim, `on_wait(key)` first) and run again: found if its holder built it, built here
    if the holder ended without."""
    pending = list(keys)
    while pending:
        held = []
        for key, outcome, value in run(pending):
            if outcome == HELD:
                held.append(key)
            else:
                yield key, outcome, value
        if held:
            on_wait(held[0])
            with claim(root, held[0], wait=True):
                pass
        pending = held
