"""The Litestar app replaying one configured CSV as Server-Sent Events.

Routes: ``GET /events`` (the stream), ``GET /health``, ``GET /dataset`` (the declaration, so an
ingest can learn what it reads) and Litestar's OpenAPI schema under ``/schema``. No request
parameter names a file: the app serves the one table it was built with.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.params import HeaderParameter, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE

from kappaml.cors import cors_config
from kappaml.csvsource import CsvTable
from kappaml.logging import get_logger
from kappaml.observability.programs import ServeMetrics
from kappaml.provenance import stream_name
from producer.labels import LabelSchedule, parse_pair
from producer.replay import Replay, ReplayParams

__all__ = ["ServerConfig", "create_app"]

log = get_logger(__name__)

MAX_RATE = 1_000_000.0
# Ids are positions in the (possibly looped) file: 2**53 keeps them exact in every JSON reader.
MAX_ID = 2**53


@dataclass(frozen=True)
class ServerConfig:
    max_clients: int = 64
    heartbeat: float = 15.0
    retry_ms: int = 3000
    batch_rows: int = 512
    # Origins whose browser pages may read /events (kappaml.cors); empty: same origin only.
    cors_origins: tuple[str, ...] = ()
    # Delayed labels: every row a `features` event now and its `label` event later (producer.labels).
    labels: LabelSchedule | None = None

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {self.max_clients}")
        if not 0 < self.heartbeat <= 3600:
            raise ValueError(f"heartbeat must be in (0, 3600] s, got {self.heartbeat}")
        if self.retry_ms < 0:
            raise ValueError(f"retry_ms must be >= 0, got {self.retry_ms}")
        if self.batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {self.batch_rows}")


class _Streams:
    """Counts live streams and tells them to finish when the server stops."""

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self.active = 0
        self.served = 0
        self.stop = threading.Event()

    async def guard(self, stream: AsyncIterator[bytes], params: ReplayParams) -> AsyncIterator[bytes]:
        self.active += 1
        self.served += 1
        log.info("stream opened", first_id=params.first_id, rate=params.rate, loop=params.loop,
                 active=self.active)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self.active -= 1
            # A client that went away cancels us here: close the file handle right now.
            await stream.aclose()  # type: ignore[attr-defined]
            log.info("stream closed", active=self.active)


def _parse_last_event_id(value: str | None, delayed: bool = False) -> tuple[int | None, int | None]:
    """(rows, labels) of a Last-Event-ID: a row id, or with delayed labels a ``rows:labels`` pair."""
    if value is None or value.strip() == "":
        return None, None
    text = value.strip()
    if delayed:
        pair = parse_pair(text)
        if pair is None or pair[0] > MAX_ID:
            raise ValidationException(
                detail="Last-Event-ID of a stream with delayed labels must be an event id ROWS:LABELS "
                       f"(two integers, LABELS <= ROWS <= {MAX_ID}), got {value[:40]!r}"
            )
        return pair
    if not text.isdigit() or int(text) > MAX_ID:
        raise ValidationException(
            detail=f"Last-Event-ID must be a row id (an integer between 0 and {MAX_ID}), got {value[:40]!r}"
        )
    return int(text), None


def _client_error(request: Request, exc: HTTPException) -> Response:
    """A refused request (bad query, too many clients): JSON, and one log line without a traceback.

    Litestar would answer in the route's media type (``text/event-stream``, with a JSON body)
    and log the refusal as an uncaught exception.
    """
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if getattr(exc, "extra", None):
        body["extra"] = exc.extra
    level = log.warning if exc.status_code >= 500 else log.info
    level("request refused", path=request.url.path, status=exc.status_code, detail=exc.detail)
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> Response:
    log.error("request failed", path=request.url.path, exc_info=exc)
    return Response({"status_code": 500, "detail": "Internal Server Error"},
                    status_code=HTTP_500_INTERNAL_SERVER_ERROR, media_type="application/json")


def create_app(table: CsvTable, config: ServerConfig | None = None,
               passes: Callable[[int], CsvTable] | None = None) -> Litestar:
    """The app serving ``table``; ``app.state.streams.stop.set()`` ends every stream.

    ``passes(k)``: the table of loop pass k >= 1, new rows instead of ``table`` again."""
    config = config or ServerConfig()
    # The file's bytes name the stream: another file is new data, the same file again is not.
    stream = stream_name(table.dataset.name, table.path)
    replay = Replay(table, heartbeat=config.heartbeat, retry_ms=config.retry_ms, batch_rows=config.batch_rows,
                    stream=stream, passes=passes, labels=config.labels)
    streams = _Streams(config.max_clients)
    metrics = ServeMetrics(streams, replay)
    dataset = table.dataset

    @get(
        "/events",
        media_type="text/event-stream",
        summary="Replay the CSV as Server-Sent Events",
        description=(
            "One `record` event per valid row (id = row id, data = the raw-topic JSON record), one "
            "`invalid` event per bad row (data: id, row, column, value, reason), and an `end` event at "
            "the end of the file unless `loop=true`. Send `Last-Event-ID` to resume right after an id. "
            "With delayed labels (`serve --label-delay`) a valid row is a `features` event and later a "
            "`label` event instead, and event ids are `ROWS:LABELS` pairs."
        ),
    )
    async def events(
        rate: Annotated[float, Parameter(ge=0, le=MAX_RATE, description="rows/s, 0 = as fast as read")] = 0.0,
        loop: Annotated[bool, Parameter(description="start over at the end of the file")] = False,
        start: Annotated[int, Parameter(ge=1, le=MAX_ID, description="first row id to send")] = 1,
        last_event_id: Annotated[
            str | None,
            HeaderParameter(name="Last-Event-ID", max_length=64, description="resume after this id"),
        ] = None,
    ) -> Stream:
        rows_id, labels_id = _parse_last_event_id(last_event_id, config.labels is not None)
        params = ReplayParams(rate=rate, loop=loop, start=start, last_event_id=rows_id, last_labels=labels_id)
        if streams.active >= streams.max_clients:
            raise HTTPException(
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"too many clients: {streams.active} streams open (max {streams.max_clients})",
                headers={"Retry-After": "1"},
            )
        if streams.stop.is_set():
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail="server is stopping")
        metrics.resumes += params.last_event_id is not None
        return Stream(
            streams.guard(replay.stream(params, streams.stop), params),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @get("/health", summary="Liveness and what is being served")
    async def health() -> dict[str, Any]:
        return {
            "status": "stopping" if streams.stop.is_set() else "ok",
            "dataset": dataset.name,
            "synthetic": dataset.synthetic,
            "stream": stream,
            # Delayed labels: the schedule and the token the ingest adds to its identity; null without.
            "labels": None if config.labels is None else {**config.labels.describe(),
                                                          "token": config.labels.token},
            "rows": table.n_rows,
            "active_streams": streams.active,
            "streams_served": streams.served,
            "max_clients": streams.max_clients,
        }

    @get("/dataset", summary="The declaration of the served data set")
    async def declaration() -> dict[str, Any]:
        return {
            "name": dataset.name,
            "features": [asdict(f) for f in dataset.features],
            "target": dataset.target,
            "key": dataset.key,
            "id_column": dataset.id_column,
            "description": dataset.description,
            "synthetic": dataset.synthetic,
            "units": dict(dataset.units),
            "stream": stream,
        }

    app = Litestar(
        route_handlers=[events, health, declaration],
        openapi_config=OpenAPIConfig(title="kappaml producer", version="0.1.0"),
        cors_config=cors_config(config.cors_origins),
        # Only GETs are served: any request body is a mistake or an attack.
        request_max_body_size=1024,
        on_shutdown=[lambda: streams.stop.set()],
        debug=False,
        # Refusals are answered in JSON and logged in one line; anything else is a 500, logged
        # with its traceback (by _server_error, so Litestar need not log exceptions itself).
        exception_handlers={HTTPException: _client_error, Exception: _server_error},
        # kappaml.logging owns the handlers (structlog, --log-level): Litestar's default
        # config would replace the root handler with its own format at start-up. Its own
        # logger only propagates.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never",
                                     loggers={"litestar": {"level": "INFO", "handlers": [],
                                                           "propagate": True}}),
    )
    app.state.streams = streams
    app.state.metrics = metrics
    app.state.table = table
    app.state.stream = stream
    return app
