"""Ingest's baseline: the SSE stream alone, read as fast as possible by a raw HTTP client (no Kafka).

The ingest cannot be faster than the server it follows; rows/s of this client over the same
CSV is that ceiling, measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from infra.testing import free_port, stop, wait_http
from kappaml import synthetic

REPO = Path(__file__).resolve().parents[1]


def sse_rows_per_s(rows: int, work: Path) -> float:
    csv = synthetic.ensure_csv(work, rows, seed=1)
    port = free_port()
    with (work / "sse-alone.log").open("ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producer",
                "serve",
                "--csv",
                str(csv),
                "--dataset",
                synthetic.SYNTHETIC_NAME,
                "--port",
                str(port),
                "--log-level",
                "WARNING",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        count, tail = 0, b""
        start = time.perf_counter()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", params={"rate": 0}, timeout=60) as resp:
            for chunk in resp.iter_raw(1 << 16):
                data = tail + chunk
                count += data.count(b"event: record")
                tail = data[-16:]
                count -= tail.count(b"event: record")  # counted again with the next chunk
        elapsed = time.perf_counter() - start
        count += tail.count(b"event: record")
    finally:
        stop(server)
    if count < rows:
        raise RuntimeError(f"SSE stream ended after {count} of {rows} rows")
    return count / elapsed
