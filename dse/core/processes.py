"""Child processes that die with their parent, even when the parent is killed with SIGKILL (Linux)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGKILL when the parent dies (no-op off Linux)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn_child(command: list[str]) -> subprocess.Popen:
    """Start `command` with stdout captured (stderr passed through); the kernel kills it if this process dies."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
