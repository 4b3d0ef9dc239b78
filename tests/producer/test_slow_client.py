"""A client that stops reading must not make the SSE server buffer the whole file."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from producer_testkit import program

from infra.testing import free_port, wait_http
from kappaml import synthetic

ROWS = 150_000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_stalled_client_does_not_grow_the_server(tmp_path):
    csv_path = synthetic.write_csv(tmp_path / "big.csv", n_rows=ROWS, seed=3)
    port = free_port()
    with program("serve", "--csv", str(csv_path), "--port", str(port), log=tmp_path / "serve.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/health")
        before = _rss_mb(proc.pid)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.sendall(f"GET /events?rate=0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            first = b""
            while len(first) < 16 * 1024:
                chunk = sock.recv(16 * 1024)
                assert chunk, "the server closed the stream"
                first += chunk
            assert first.startswith(b"HTTP/1.1 200")
            event_bytes = first.index(b"id: 2\n") - first.index(b"id: 1\n")
            # Unbounded buffering would hold the whole stream: far more than the bound below.
            assert ROWS * event_bytes > 40 * 1024 * 1024
            time.sleep(4)  # the client reads nothing; the server must wait, not buffer
            grown = _rss_mb(proc.pid) - before
            assert wait_http(f"http://127.0.0.1:{port}/health")  # still serving others
        assert grown < 20, f"server RSS grew by {grown:.1f} MB for one stalled client"
