"""A processor instance's stable identity: its Kafka transactional id and static group membership.

Why stable: a processor killed with SIGKILL leaves its Kafka transaction open. Under a fresh
random ``transactional.id`` nothing fences it, and it blocks every read_committed reader (the UI,
the feeds, downstream consumers) until the broker times it out (a minute by default). Restarted
under the *same* id, the new process's ``init_transactions`` aborts it at once. The same id is
also the consumer's ``group.instance.id`` (static membership, KIP-345): the restarted process
takes its predecessor's place in the group without waiting for its session to time out, so
committed output flows again within seconds.

Several instances of one group on one host must not share an id (the broker would fence one
with the other). Each claims the lowest free *slot* by holding an exclusive lock on a file in
a host-wide directory; the kernel drops the lock when the process dies, however it dies, so a
restart claims the slot (and the id) its predecessor had. On several hosts the host name keeps
the ids apart; where the host name changes at every start (containers of a Deployment), pass
``--instance-id`` from something stable (a StatefulSet's pod name).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO

__all__ = ["InstanceIdentity", "claim_identity"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_SLOTS = 256


class InstanceIdentity:
    """The id (transactional id and group instance id) of one running processor instance."""

    def __init__(self, group: str, instance: str, lock: IO[bytes] | None = None) -> None:
        if not instance or _UNSAFE.search(instance):
            raise ValueError("instance id must be non-empty: letters, digits, '.', '_' or '-'; "
                             f"got {instance!r}")
        self.group = group
        self.instance = instance
        self._lock = lock  # held open for the life of the process: the claim on the slot

    @property
    def transactional_id(self) -> str:
        return f"{self.group}-{self.instance}"

    @property
    def group_instance_id(self) -> str:
        return self.transactional_id

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __repr__(self) -> str:
        return f"InstanceIdentity(group={self.group!r}, instance={self.instance!r})"


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "kappaml-instances"


def claim_identity(group: str, instance: str = "", lock_dir: Path | None = None) -> InstanceIdentity:
    """``instance`` as given, or ``<host>-<slot>`` with the lowest slot no live process holds."""
    if instance:
        return InstanceIdentity(group, instance)
    host = _UNSAFE.sub("-", socket.gethostname()) or "host"
    folder = (lock_dir or default_lock_dir()) / hashlib.sha256(group.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        handle = open(folder / f"slot-{slot}.lock", "ab")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        os.set_inheritable(handle.fileno(), False)
        return InstanceIdentity(group, f"{host}-{slot}", handle)
    raise ValueError(f"more than {MAX_SLOTS} processor instances of group {group!r} on this host")
