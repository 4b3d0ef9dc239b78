"""Following an SSE stream in a background thread, across dropped connections and restarts.

The thread reads events with httpx + httpx-sse and hands them over through a bounded queue,
so the Kafka side never blocks on the network and notices a stop request promptly. After any
drop it reconnects with ``Last-Event-ID`` = the id of the last event it handed over, with
capped exponential backoff; the events it handed over are the consumer's responsibility.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import httpx
from httpx_sse import SSEError, connect_sse

from kappaml.logging import get_logger

__all__ = ["Event", "FatalStreamError", "Follower"]

log = get_logger(__name__)

# Events that carry a row (or a row's label): handed over in order, each once.
_ROW_EVENTS = frozenset({"record", "features", "label", "invalid"})

# Statuses worth retrying: the server is busy, starting or being replaced.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "record" | "features" | "label" | "invalid" | "end"
    id: str
    data: str


class FatalStreamError(RuntimeError):
    """The server refuses the request for good (e.g. a 400 for bad query values)."""


class Follower(threading.Thread):
    def __init__(
        self,
        url: str,
        last_event_id: str | None,
        *,
        max_backoff: float = 5.0,
        read_timeout: float = 60.0,
        max_queued: int = 50_000,
    ) -> None:
        super().__init__(name="sse-follower", daemon=True)
        self.url = url
        self.last_event_id = last_event_id
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout
        self.max_queued = max_queued
        self.connects = 0
        self.error: BaseException | None = None
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = threading.Event()
        self._waiting = False
        self._halt = threading.Event()
        self._finished = False  # the stream sent `end` (or failed for good)

    # ------------------------------------------------------------------ consumer side

    def drain(self, timeout: float, limit: int = 5000) -> list[Event]:
        """Up to ``limit`` queued events, waiting up to ``timeout`` s for the first one."""
        queue = self._queue
        if not queue:
            # The reader only signals a waiting consumer (an Event.set per event is costly);
            # the re-check after raising the flag closes the race with a concurrent append.
            self._waiting = True
            if not queue:
                self._ready.wait(timeout)
            self._waiting = False
            self._ready.clear()
        out: list[Event] = []
        popleft = queue.popleft
        while queue and len(out) < limit:
            out.append(popleft())
        return out

    @property
    def finished(self) -> bool:
        """No more events will come (``end`` received or a fatal error); check ``error``."""
        return self._finished and not self._queue

    def stop(self) -> None:
        self._halt.set()
        self._ready.set()

    # ------------------------------------------------------------------ thread side

    def _put(self, event: Event) -> None:
        while len(self._queue) >= self.max_queued and not self._halt.is_set():
            time.sleep(0.001)  # back-pressure: Kafka is slower than the network right now
        self._queue.append(event)
        if self._waiting:
            self._ready.set()

    def run(self) -> None:
        backoff = 0.1
        timeout = httpx.Timeout(connect=5.0, read=self.read_timeout, write=5.0, pool=5.0)
        try:
            with httpx.Client(timeout=timeout) as client:
                while not self._halt.is_set():
                    try:
                        if self._follow(client):
                            return
                        backoff = 0.1  # the stream was up: the next drop starts the backoff afresh
                        log.info("stream closed by the server", last_event_id=self.last_event_id)
                    except FatalStreamError:
                        raise
                    except (httpx.TransportError, httpx.HTTPStatusError, SSEError) as exc:
                        log.warning("stream unavailable; retrying", error=str(exc) or type(exc).__name__,
                                    retry_in=round(backoff, 2), last_event_id=self.last_event_id)
                    self._halt.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
        except BaseException as exc:
            self.error = exc
        finally:
            self._finished = True
            self._ready.set()

    def _follow(self, client: httpx.Client) -> bool:
        """Read one connection's events; True when the stream ended for good."""
        headers = {} if self.last_event_id is None else {"Last-Event-ID": self.last_event_id}
        with connect_sse(client, "GET", self.url, headers=headers) as source:
            response = source.response
            if response.status_code != 200:
                response.read()
                detail = response.text[:300]
                if response.status_code in _RETRY_STATUSES:
                    raise httpx.HTTPStatusError(f"HTTP {response.status_code}: {detail}",
                                                request=response.request, response=response)
                raise FatalStreamError(f"{self.url} answered HTTP {response.status_code}: {detail}")
            self.connects += 1
            log.info("stream connected", url=self.url, last_event_id=self.last_event_id)
            last_order = _as_order(self.last_event_id)
            for sse in source.iter_sse():
                if self._halt.is_set():
                    return True
                kind = sse.event
                if kind in _ROW_EVENTS:
                    event_id = sse.id
                    # A server that repeats ids (it should not) must not make us produce twice.
                    current = _as_order(event_id)
                    if current is not None and last_order is not None and current <= last_order:
                        continue
                    last_order = current
                    self.last_event_id = event_id
                    self._put(Event(kind, event_id, sse.data))
                elif kind == "end":
                    self._put(Event("end", sse.id, sse.data))
                    return True
                # Anything else (retry-only blocks, unknown event types) carries no row.
        return False


def _as_order(text: str | None) -> tuple[int, ...] | None:
    """The order of an event id: a row id ``"7"`` or a delayed-label pair ``"7:3"`` (producer.labels)."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(":", 1))
    except ValueError:
        return None
