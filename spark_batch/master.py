"""A standalone Spark master must answer before spark-submit starts a JVM that would retry for minutes."""

from __future__ import annotations

import socket

from spark_batch.errors import ReplayError

__all__ = ["check_master"]

_SPARK_PORT = 7077


def _addresses(master: str) -> list[tuple[str, int]]:
    # spark://host1:port1,host2:port2 names the masters of a ZooKeeper-backed HA pair.
    out = []
    for part in master.removeprefix("spark://").split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:  # no port given
            host, port = port, str(_SPARK_PORT)
        try:
            out.append((host.strip("[]"), int(port)))
        except ValueError:
            raise ReplayError(f"Spark master {master!r}: {port!r} is not a port number") from None
    return out


def check_master(master: str, timeout: float = 3.0) -> None:
    """Raise ``ReplayError`` naming the address when no master of ``spark://...`` accepts a connection.

    ``local[...]`` and cluster managers other than standalone (yarn, k8s://) are not checked.
    """
    if not master.startswith("spark://"):
        return
    reasons = []
    for host, port in _addresses(master):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
    raise ReplayError(f"Spark master {master} is unreachable ({'; '.join(reasons)}); "
                      "start one with `python -m infra spark up` or check --master")
