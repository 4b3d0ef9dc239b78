"""``producer serve`` logs through kappaml's structlog handlers, at the level it was given."""

from __future__ import annotations

import json
import signal

from producer_testkit import program

from infra.testing import free_port, kill, wait_http
from kappaml import synthetic


def _serve_log(tmp_path, *level: str) -> list[str]:
    csv_path = synthetic.write_csv(tmp_path / "rows.csv", n_rows=50, seed=1)
    port = free_port()
    log = tmp_path / f"serve{'-'.join(level)}.log"
    with program("serve", "--csv", str(csv_path), "--port", str(port), *level, log=log) as proc:
        wait_http(f"http://127.0.0.1:{port}/health")
        kill(proc, signal.SIGTERM)
    return [line for line in log.read_text().splitlines() if line.strip()]


def test_uvicorn_and_litestar_lines_are_structlog_records(tmp_path):
    lines = _serve_log(tmp_path)
    records = [json.loads(line) for line in lines]  # every line: JSON (off a TTY), none of Litestar's format
    events = [r["event"] for r in records]
    assert "serving" in events
    assert any(e.startswith("Uvicorn running on") for e in events)


def test_warning_level_silences_the_info_lines(tmp_path):
    lines = _serve_log(tmp_path, "--log-level", "WARNING")
    assert lines == [], lines
