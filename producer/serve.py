"""``producer serve``: the Litestar SSE app under uvicorn, with a prompt graceful stop."""

from __future__ import annotations

import functools
from collections.abc import Callable

import uvicorn

from kappaml import synthetic
from kappaml.csvsource import CsvTable
from kappaml.logging import get_logger
from kappaml.observability import serve_metrics
from producer.server import create_app
from producer.settings import ServeSettings

__all__ = ["run_serve"]

log = get_logger(__name__)


class _Server(uvicorn.Server):
    """Ends open streams at SIGTERM/Ctrl-C: uvicorn alone would wait for them to finish."""

    def __init__(self, config: uvicorn.Config, stop) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config)
        self._stop_streams = stop

    def handle_exit(self, sig: int, frame) -> None:  # type: ignore[no-untyped-def]
        self._stop_streams.set()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after its graceful shutdown (exit status -15); a clean stop
        # on request is a success, so exit 0 instead.
        self._captured_signals.clear()


def fresh_passes(settings: ServeSettings) -> Callable[[int], CsvTable] | None:
    """For the generated synthetic data set: pass k of a loop is new rows (seed + k)."""
    if settings.synthetic is None:
        return None
    cache_dir, rows, seed = settings.synthetic

    @functools.lru_cache(maxsize=2)
    def table(k: int) -> CsvTable:
        path = synthetic.ensure_csv(cache_dir, rows, seed + k)
        if k >= 3:  # a pass file is regenerated if a client ever resumes that far back
            synthetic.ensure_csv(cache_dir, rows, seed + k - 2).unlink(missing_ok=True)
        return CsvTable(path, settings.dataset)

    return table


def run_serve(settings: ServeSettings) -> int:
    table = CsvTable(settings.csv, settings.dataset)
    app = create_app(table, settings.server, passes=fresh_passes(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # kappaml.logging owns the handlers
        access_log=False,
        # Streams beyond max_clients get a clear 503 from the app; this is the hard cap on sockets.
        limit_concurrency=settings.server.max_clients + 32,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=16 * 1024,
    )
    log.info("serving", url=f"http://{settings.host}:{settings.port}/events", csv=str(settings.csv),
             dataset=settings.dataset.name, synthetic=settings.dataset.synthetic, stream=app.state.stream,
             columns=len(table.header))
    serve_metrics(settings.metrics_port, app.state.metrics.registry)
    server = _Server(config, app.state.streams.stop)
    server.run()
    return 0
