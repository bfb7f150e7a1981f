"""`dse dashboard`: optuna-dashboard serves the study on loopback with its metric names and constraints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("optuna_dashboard", reason="the `dashboard` extra (installed by the test extra in CI)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, deadline: float) -> object:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_serves_the_study_with_names_and_constraints(tiny_study: dict) -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "dse.cli", "dashboard", str(tiny_study["out"]), "--port",
                               str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        base = f"http://127.0.0.1:{port}"
        studies = _get(f"{base}/api/studies", time.monotonic() + 60)["study_summaries"]
        (study,) = [s for s in studies if s["study_name"] == "tiny"]
        assert len(json.dumps(study["user_attrs"])) < 2000  # the report's data is not listed as study attributes
        detail = _get(f"{base}/api/studies/{study['study_id']}", time.monotonic() + 30)
        assert detail["objective_names"] == ["energy_pj", "accuracy_loss_pct"]
        assert detail["trials"] and all(len(t["constraints"]) == 1 for t in detail["trials"])
        names = {attr["key"] for attr in detail["trials"][0]["user_attrs"]}
        assert {"cascade", "test_energy_j", "test_accuracy_loss_pct"} <= names
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
