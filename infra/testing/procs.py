"""Programs of the pipeline as real child processes, for the tests, ``make chaos`` and the benchmarks.

Each program runs in its own process group (so a Quix source's child dies with it), writes its
output to a log file, and is stopped by its pid only: never by name.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from infra.cluster import LocalCluster

__all__ = ["REPO", "discard_cluster", "free_port", "free_port_run", "kill", "running", "spawn", "start",
           "stop", "wait_http"]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may still take it before it is bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(n: int) -> int:
    """A base port with ``n`` consecutive free ports above it (a local cluster's nodes)."""
    for _ in range(100):
        base = random.randrange(20_000, 40_000)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                socks.append(socket.socket())
                socks[-1].bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {n} free ports")


def spawn(argv: Sequence[str], log: Path | None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``argv`` in a new session from the repository root, its output appended to ``log``.

    ``env`` is added to this process's environment. Without ``log``, stdout and stderr are piped.
    """
    full_env = {**os.environ, **(env or {})}
    if log is None:
        return subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    with log.open("ab") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def start(module: str, args: Sequence[str], log: Path | None, env: Mapping[str, str] | None = None,
          capture: bool = False) -> subprocess.Popen[bytes]:
    """``python -m <module> <args>`` (this interpreter), logging at INFO unless ``env`` says otherwise.

    With ``capture``, stdout and stderr are piped instead of written to ``log``.
    """
    return spawn([sys.executable, "-m", module, *args], None if capture else log,
                 {"KAPPAML_LOG_LEVEL": "INFO", **(env or {})})


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, timeout: float = 20.0) -> int | None:
    """Signal the process group of ``proc`` and reap it; SIGKILL the group if it outlives ``timeout``.

    The group is signalled even when ``proc`` has exited: its children may not have.
    """
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(10)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
    """SIGTERM (a clean shutdown) the process group of ``proc``; SIGKILL it if it lingers."""
    return kill(proc, signal.SIGTERM, timeout)


def discard_cluster(cluster: LocalCluster) -> None:
    """SIGKILL every node of a test's throwaway Kafka cluster (its data dir is a temp dir).

    ``LocalCluster.stop()`` SIGTERMs all nodes at once, and here they then hang in their shutdown
    until its 30 s timeout SIGKILLs them (a cluster chaos run: 30 s of its 158). A test that does
    not test the shutdown itself has nothing to shut down cleanly.
    """
    for node in cluster.running():
        cluster.kill_node(node)


@contextmanager
def running(module: str, *args: str, log: Path, env: Mapping[str, str] | None = None,
            ) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start` for the ``with`` block; the process group is killed when it ends."""
    proc = start(module, args, log, env)
    try:
        yield proc
    finally:
        kill(proc)


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> httpx.Response:
    """The first 200 answer of ``url``; fails at once if ``proc`` exits, with the tail of ``log``."""
    def tail() -> str:
        return f":\n{log.read_text(errors='replace')[-3000:]}" if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {proc.returncode}{tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s{tail()}")
        time.sleep(0.1)
