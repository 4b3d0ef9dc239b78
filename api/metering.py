"""The ASGI middleware that counts and times every request for ``/metrics`` (ApiMetrics).

Pure ASGI rather than a Litestar hook: it sees the status the client really got, also when
an exception handler or the body-size limit answered, and costs a clock read and two dict
updates per request.
"""

from __future__ import annotations

import time
from typing import Any

from kappaml.observability.programs import ApiMetrics

__all__ = ["Metering"]


class Metering:
    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server sends when the app fails before its response starts

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request(scope["path"], status, time.perf_counter() - start)
