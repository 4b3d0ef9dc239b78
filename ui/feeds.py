"""Live SSE feeds of the predictions, metrics and drift topics, served by Litestar.

``GET /streams/predictions``, ``GET /streams/metrics`` and ``GET /streams/drift`` relay every
record of their topic as one Server-Sent Event (``event: prediction`` / ``metrics`` / ``drift``,
data = the record's JSON, as typed in kappaml.records: see docs/records.md).
The event id is the topic position after the event (``ui.position``): a client that reconnects
with ``Last-Event-ID`` (browsers do it by themselves) resumes exactly after the last event it
saw. ``?from=end`` (default) starts at the end of the topic, ``?from=beginning`` at its start.
``GET /`` is a small page showing a feed in the browser with ``EventSource``.

Each stream has its own manually assigned consumer (no consumer group, nothing committed).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from litestar import Litestar, MediaType, get
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_503_SERVICE_UNAVAILABLE

from kappaml.cors import cors_config
from kappaml.logging import get_logger
from kappaml.observability.programs import FeedsMetrics
from ui.feed_page import PAGE
from ui.position import MAX_ID_LENGTH, Position, parse_position
from ui.settings import UISettings

__all__ = ["FeedConfig", "create_feeds_app"]

log = get_logger(__name__)

Start = Literal["end", "beginning"]

# Module level: the handlers' annotations are resolved by name (postponed evaluation).
LastIdHeader = Annotated[str | None, HeaderParameter(name="Last-Event-ID", max_length=MAX_ID_LENGTH,
                                                     description="resume right after the event with this id")]
LastIdQuery = Annotated[str | None, QueryParameter(
    name="last_event_id", max_length=MAX_ID_LENGTH,
    description="same as the Last-Event-ID header, for clients that cannot set headers")]
StartQuery = Annotated[Start, QueryParameter(
    name="from", description="where a new stream starts: end (default) or beginning")]


@dataclass(frozen=True)
class FeedConfig:
    max_clients: int = 32
    heartbeat: float = 15.0
    retry_ms: int = 2000
    poll_timeout: float = 0.25
    request_timeout: float = 5.0
    # Origins whose browser pages may read the feeds (kappaml.cors); empty: same origin only.
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {self.max_clients}")
        if not 0 < self.heartbeat <= 3600:
            raise ValueError(f"heartbeat must be in (0, 3600] s, got {self.heartbeat}")
        if self.retry_ms < 0:
            raise ValueError(f"retry_ms must be >= 0, got {self.retry_ms}")
        if not 0 < self.poll_timeout <= 5:
            raise ValueError(f"poll_timeout must be in (0, 5] s, got {self.poll_timeout}")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0 s, got {self.request_timeout}")


@dataclass(frozen=True)
class _Opened:
    consumer: Consumer
    start: dict[int, int]
    gaps: list[dict[str, Any]]


class _Feeds:
    def __init__(self, settings: UISettings, config: FeedConfig) -> None:
        self.settings = settings
        self.config = config
        self.active = 0
        self.served = 0
        self.stop = threading.Event()
        self.metrics = FeedsMetrics(self)

    def _consumer(self) -> Consumer:
        return Consumer({
            **self.settings.kafka.client_config(),
            "group.id": f"kappaml-feed-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "log_level": 2,
            "error_cb": lambda _err: None,  # the stream goes quiet and resumes; the 503 says it at connect
            "reconnect.backoff.max.ms": 2000,
        })

    def open(self, topic: str, resume: Position | None, start: Start) -> _Opened:
        """Assign a fresh consumer at the requested position (blocking: run in a worker thread)."""
        consumer = self._consumer()
        try:
            marks = self._watermarks(consumer, topic)
            begin, gaps = self._start_offsets(topic, marks, resume, start)
            consumer.assign([TopicPartition(topic, p, o) for p, o in begin.items()])
            return _Opened(consumer, begin, gaps)
        except BaseException:
            consumer.close()
            raise

    def _watermarks(self, consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
        """(low, high) per partition. A topic just created has no leaders for a moment: that is
        retried until the request timeout; Kafka down or the topic missing is a 503."""
        timeout = self.config.request_timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            except KafkaException as exc:
                raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "2"},
                                    detail=f"Kafka at {self.settings.kafka.bootstrap_servers} is not "
                                           f"reachable ({_error_text(exc)})") from None
            if metadata is None or not metadata.partitions or (
                    metadata.error is not None and metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                problem, retry_after = f"topic {topic} does not exist yet: start the pipeline", "5"
            else:
                try:
                    if metadata.error is not None:
                        raise KafkaException(metadata.error)
                    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout,
                                                              cached=False)
                            for p in sorted(metadata.partitions)}
                except KafkaException as exc:
                    problem, retry_after = f"topic {topic} is not ready ({_error_text(exc)})", "2"
            if time.monotonic() >= deadline:
                raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE,
                                    headers={"Retry-After": retry_after}, detail=problem)
            time.sleep(0.2)

    @staticmethod
    def _start_offsets(topic: str, marks: dict[int, tuple[int, int]], resume: Position | None,
                       start: Start) -> tuple[dict[int, int], list[dict[str, Any]]]:
        if resume is None:
            return {p: (low if start == "beginning" else high) for p, (low, high) in marks.items()}, []
        wanted = resume.as_dict()
        unknown = sorted(set(wanted) - set(marks))
        if unknown:
            raise HTTPException(status_code=HTTP_400_BAD_REQUEST,
                                detail=f"Last-Event-ID names partition(s) {unknown} but topic {topic} has "
                                       f"partitions 0..{max(marks)}: it is not an id of this feed")
        begin: dict[int, int] = {}
        gaps: list[dict[str, Any]] = []
        for p, (low, high) in marks.items():
            if p not in wanted:  # a partition added since the client's id was made
                begin[p] = low
                continue
            offset = wanted[p]
            if offset > high:
                raise HTTPException(status_code=HTTP_400_BAD_REQUEST,
                                    detail=f"Last-Event-ID is ahead of topic {topic}: partition {p} "
                                           f"offset {offset} is past its end offset {high}; it is not an "
                                           "id of this feed")
            if offset < low:  # deleted by retention: say so instead of skipping in silence
                gaps.append({"partition": p, "requested": offset, "resumed_at": low, "lost": low - offset})
                offset = low
            begin[p] = offset
        return begin, gaps

    async def stream(self, opened: _Opened, event: str) -> AsyncIterator[ServerSentEventMessage]:
        consumer, position = opened.consumer, dict(opened.start)
        self.active += 1
        self.served += 1
        self.metrics.clients[event] += 1
        log.info("feed stream opened", feed=event, start=Position.of(position).encode(), active=self.active)
        try:
            yield ServerSentEventMessage(data=None, comment="kappaml feed")
            retry: int | None = self.config.retry_ms  # sent once, with the first event
            for gap in opened.gaps:
                log.warning("feed resumed after a retention gap", **gap)
                yield ServerSentEventMessage(event="gap", data=json.dumps(gap))
            quiet_since = time.monotonic()
            while not self.stop.is_set():
                batch = await anyio.to_thread.run_sync(
                    lambda: consumer.consume(num_messages=500, timeout=self.config.poll_timeout))
                sent = 0
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    position[msg.partition()] = msg.offset() + 1
                    value = msg.value()
                    if value is None:
                        continue
                    sent += 1
                    yield ServerSentEventMessage(data=value.decode("utf-8", "replace"), event=event,
                                                 id=Position.of(position).encode(), retry=retry)
                    retry = None
                    if sent % 16 == 0:
                        # Writes to a socket do not yield to the event loop: without this, a
                        # backlog would be written on for a while after the client went away.
                        await anyio.lowlevel.checkpoint()
                now = time.monotonic()
                self.metrics.sent[event] += sent
                if sent:
                    quiet_since = now
                elif now - quiet_since >= self.config.heartbeat:
                    # Keeps proxies from timing out and finds clients that went away.
                    quiet_since = now
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
        finally:
            self.active -= 1
            self.metrics.clients[event] -= 1
            # A client that went away cancels us: the shield lets the consumer close anyway.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(consumer.close)
            if self.stop.is_set():
                log.info("feed stream closed", feed=event, active=self.active)
            else:  # the client went away: routine, one debug line
                log.debug("feed client went away", feed=event, active=self.active)


def _error_text(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else exc
    return error.str() if isinstance(error, KafkaError) else str(error)




def create_feeds_app(settings: UISettings, config: FeedConfig | None = None) -> Litestar:
    """The feeds app; ``app.state.feeds.stop.set()`` ends every stream."""
    config = config or FeedConfig()
    feeds = _Feeds(settings, config)
    topics = settings.topics

    async def _serve(topic: str, event: str, header_id: str | None, query_id: str | None,
                     start: Start) -> ServerSentEvent:
        raw = header_id if header_id is not None and header_id.strip() else query_id
        try:
            resume = parse_position(raw) if raw is not None and raw.strip() else None
        except ValueError as exc:
            raise HTTPException(status_code=HTTP_400_BAD_REQUEST, detail=str(exc)) from None
        if feeds.stop.is_set():
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="server is stopping")
        if feeds.active >= config.max_clients:
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"},
                                detail=f"too many clients: {feeds.active} streams open "
                                       f"(max {config.max_clients})")
        opened = await anyio.to_thread.run_sync(feeds.open, topic, resume, start)
        feeds.metrics.resumes += resume is not None
        return ServerSentEvent(feeds.stream(opened, event),
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @get("/streams/predictions", summary="Predictions as Server-Sent Events (event: prediction)")
    async def predictions(
        last_event_id: LastIdHeader = None,
        last_event_id_query: LastIdQuery = None,
        start: StartQuery = "end",
    ) -> ServerSentEvent:
        return await _serve(topics.predictions, "prediction", last_event_id, last_event_id_query, start)

    @get("/streams/metrics", summary="Metrics as Server-Sent Events (event: metrics)")
    async def metrics(
        last_event_id: LastIdHeader = None,
        last_event_id_query: LastIdQuery = None,
        start: StartQuery = "end",
    ) -> ServerSentEvent:
        return await _serve(topics.metrics, "metrics", last_event_id, last_event_id_query, start)

    @get("/streams/drift", summary="Drift detections as Server-Sent Events (event: drift)")
    async def drift(
        last_event_id: LastIdHeader = None,
        last_event_id_query: LastIdQuery = None,
        start: StartQuery = "end",
    ) -> ServerSentEvent:
        return await _serve(topics.drift, "drift", last_event_id, last_event_id_query, start)

    @get("/", media_type=MediaType.HTML, summary="A page showing a feed with EventSource")
    async def page() -> str:
        return PAGE

    @get("/health", summary="Liveness and stream counts")
    async def health() -> dict[str, Any]:
        return {"status": "stopping" if feeds.stop.is_set() else "ok", "prefix": settings.prefix,
                "active_streams": feeds.active, "streams_served": feeds.served,
                "max_clients": config.max_clients}

    app = Litestar(
        route_handlers=[predictions, metrics, drift, page, health],
        request_max_body_size=1024,
        cors_config=cors_config(config.cors_origins),
        on_shutdown=[lambda: feeds.stop.set()],
        debug=False,
        # kappaml.logging owns the handlers (structlog, --log-level): Litestar's default
        # config would replace the root handler with its own format at start-up. Its own
        # logger only propagates, and a handler's unexpected exception is always logged.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="always",
                                     loggers={"litestar": {"level": "INFO", "handlers": [],
                                                           "propagate": True}}),
    )
    app.state.feeds = feeds
    return app
