"""api/metering.py: the status the client got, per endpoint, with unknown paths folded into one label."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from api.metering import Metering
from kappaml.observability import exposition
from kappaml.observability.programs import ApiMetrics


class _Writer:
    committed = written = failed = 0


class _Replica:
    caught_up = threading.Event()

    def __len__(self) -> int:
        return 0


def _app(status: int | None):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if status is None:
            raise RuntimeError("the handler failed before answering")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    return app


def _call(metering: Metering, path: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(metering({"type": "http", "path": path}, receive, send))


def test_counts_status_per_endpoint_and_folds_unknown_paths() -> None:
    metrics = ApiMetrics(_Writer(), _Replica())
    _call(Metering(_app(200), metrics), "/predict")
    _call(Metering(_app(200), metrics), "/predict")
    _call(Metering(_app(400), metrics), "/predict")
    _call(Metering(_app(404), metrics), "/nope/" + "x" * 50)
    with pytest.raises(RuntimeError):
        _call(Metering(_app(None), metrics), "/labels")
    assert metrics.requests == {("/predict", 200): 2, ("/predict", 400): 1, ("other", 404): 1,
                                ("/labels", 500): 1}
    assert metrics.durations["/predict"].counts[-1] + sum(metrics.durations["/predict"].counts[:-1]) == 3
    text = exposition(metrics.registry).decode()
    assert 'kappaml_api_requests_total{endpoint="other",status="404"} 1.0' in text
    assert "/nope" not in text


def test_websocket_and_lifespan_pass_through_uncounted() -> None:
    metrics = ApiMetrics(_Writer(), _Replica())
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    asyncio.run(Metering(app, metrics)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"] and metrics.requests == {}
