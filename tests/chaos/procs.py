"""Programs of the pipeline as real processes, for the fault-injection tests and ``make chaos``.

Each program runs in its own process group (its Quix source child dies with it), logs to a file,
and is stopped by pid only: never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          capture: bool = False) -> subprocess.Popen[bytes]:
    """``python -m <module> <args>`` in a new session; output appended to ``log`` (or piped)."""
    full_env = {**os.environ, "KAPPAML_LOG_LEVEL": "INFO", **(env or {})}
    out = subprocess.PIPE if capture else log.open("ab")
    try:
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT if not capture else subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if not capture:
            out.close()  # type: ignore[union-attr]


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, timeout: float = 20.0) -> int | None:
    """Signal the process group of ``proc`` and reap it; SIGKILL if it outlives ``timeout``."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(10)


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s")
        time.sleep(0.1)
