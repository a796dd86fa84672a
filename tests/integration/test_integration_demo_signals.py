"""`lianmo demo` stops its party nodes when it is interrupted (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _node_pids(output: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"{output}/parties/.*/party.toml"], capture_output=True, text=True
    )
    return [int(p) for p in found.stdout.split()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_demo_stops_every_node(tmp_path: Path, sig: signal.Signals) -> None:
    output = tmp_path / "demo-output"
    log = (tmp_path / "demo.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lianmo.cli.main", "demo", "--output", str(output)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while "align" not in (tmp_path / "demo.log").read_text():
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo never reached alignment"
            time.sleep(0.2)
        assert len(_node_pids(output)) == 3
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert "interrupted" in (tmp_path / "demo.log").read_text()
    assert _node_pids(output) == []
    assert not (output / "metrics.json").exists()
