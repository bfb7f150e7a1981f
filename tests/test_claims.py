"""Claims on cache keys: one holder at a time, released when the holder's process dies, and `share` builds every key
exactly once whether its holder finishes or crashes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nets.scores._claims import BUILT, FOUND, HELD, claim, claimed, share

HOLD = """
import sys, time
from nets.scores._claims import claim
with claim(sys.argv[1], sys.argv[2], wait=True):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _holder(root: Path, key: str, seconds: float) -> subprocess.Popen:
    """Another process holding the claim on `key` for `seconds` (returns once it holds it)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(root), key, str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_claim_held_elsewhere_is_refused_until_its_holder_is_killed(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "k1", 60)
    with claim(tmp_path, "k1", wait=False) as mine:
        assert not mine
    with claim(tmp_path, "k2", wait=False) as mine:  # other keys are free
        assert mine
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with claim(tmp_path, "k1", wait=False) as mine:  # the kernel dropped the dead holder's lock
        assert mine


def test_claimed_builds_finds_or_reports_held(tmp_path: Path) -> None:
    store: dict[str, str] = {}

    def build() -> str:
        store["k"] = "value"
        return "value"

    assert claimed(str(tmp_path), "k", lambda: store.get("k"), build) == ("k", BUILT, "value")
    assert claimed(str(tmp_path), "k", lambda: store.get("k"), build) == ("k", FOUND, "value")
    holder = _holder(tmp_path, "j", 60)
    try:
        assert claimed(str(tmp_path), "j", lambda: None, build) == ("j", HELD, None)
    finally:
        holder.kill()
        holder.wait()


def _share(root: Path, keys: list[str], store: dict[str, str], waited: list[str]) -> dict[str, str]:
    """Outcome per key of `share` over an in-memory store, building a key by writing it."""

    def run(todo: list[str]):  # type: ignore[no-untyped-def]
        return [claimed(str(root), key, lambda key=key: store.get(key), lambda key=key: store.setdefault(key, "here"))
                for key in todo]

    return {key: outcome for key, outcome, _ in share(keys, run, root, waited.append)}


def test_share_waits_for_a_holder_then_builds_what_a_dead_holder_left(tmp_path: Path) -> None:
    store: dict[str, str] = {}
    waited: list[str] = []
    holder = _holder(tmp_path, "b", 1.5)  # finishes (without storing "b"): "b" is built here once free
    started = time.monotonic()
    outcomes = _share(tmp_path, ["a", "b", "c"], store, waited)
    assert time.monotonic() - started >= 1.0  # it did wait for the holder
    assert outcomes == {"a": BUILT, "b": BUILT, "c": BUILT} and waited == ["b"]
    holder.wait()
    killed = _holder(tmp_path, "d", 60)
    store["e"] = "elsewhere"

    def kill_soon() -> None:
        time.sleep(0.5)
        killed.send_signal(signal.SIGKILL)

    threading.Thread(target=kill_soon).start()
    assert _share(tmp_path, ["d", "e"], store, waited) == {"d": BUILT, "e": FOUND}
    killed.wait()
