"""Which local TCP ports are taken, and by what: ``make run`` checks before it starts anything."""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["port_owner", "taken_ports"]


def _in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address "HEXIP:HEXPORT", state 0A = LISTEN, inode in column 10
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_owner(port: int) -> str:
    """``pid N: command line`` of the process listening on ``port``, or "" (not Linux, not ours)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return ""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    cmd = raw.replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    cmd = "?"
                cmd = " ".join(cmd.split())
                return f"pid {pid}: {cmd[:120] + ('...' if len(cmd) > 120 else '')}"
    return ""


def taken_ports(host: str, ports: dict[str, int]) -> list[str]:
    """One line per port of ``ports`` (what -> port) that cannot be bound on ``host``."""
    lines = []
    for what, port in ports.items():
        if _in_use(host, port):
            owner = port_owner(port)
            lines.append(f"port {host}:{port} ({what}) is taken" + (f" by {owner}" if owner else
                                                                     " by another process"))
    return lines
