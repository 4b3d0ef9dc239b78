"""Every error the prediction API answers, in one place: JSON bodies, one log line each."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from kappaml.example import InvalidRecord
from kappaml.logging import get_logger

__all__ = ["bad_item", "client_error", "model_failed", "no_model", "server_error", "too_large", "unavailable"]

log = get_logger(__name__)


def bad_item(exc: InvalidRecord, index: int | None, part: str) -> HTTPException:
    """A 400 naming the field (``[index].part.column`` in a batch) and the reason."""
    column = exc.column or part
    field = column if column in ("key", "id", "target", "features") else f"{part}.{column}"
    if index is not None:
        field = f"[{index}].{field}"
    extra: dict[str, Any] = {"field": field, "reason": exc.reason}
    if exc.value is not None:
        extra["value"] = exc.value
    if index is not None:
        extra["index"] = index
    return HTTPException(status_code=HTTP_400_BAD_REQUEST, detail=f"{field}: {exc.reason}", extra=extra)


def too_large(items: int, limit: int) -> HTTPException:
    return HTTPException(status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                         detail=f"a batch of {items} items is over the limit of {limit}: split it")


def no_model(label: str, key: str | None = None) -> HTTPException:
    what = f"no snapshot of key {key!r} under {label!r}" if key is not None else f"no model version {label!r}"
    return HTTPException(status_code=HTTP_404_NOT_FOUND, detail=f"{what} (GET /models lists what is served)")


def model_failed(exc: Exception, index: int | None) -> HTTPException:
    where = f"[{index}]: " if index is not None else ""
    return HTTPException(status_code=HTTP_422_UNPROCESSABLE_ENTITY,
                         detail=f"{where}the model could not predict: {type(exc).__name__}: {exc}")


def unavailable(detail: str) -> HTTPException:
    return HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=detail,
                         headers={"Retry-After": "1"})


def client_error(request: Request, exc: HTTPException) -> Response:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if getattr(exc, "extra", None):
        body["extra"] = exc.extra
    level = log.warning if exc.status_code >= 500 else log.debug
    level("request refused", path=request.url.path, status=exc.status_code, detail=exc.detail)
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers)


def server_error(request: Request, exc: Exception) -> Response:
    log.error("request failed", path=request.url.path, exc_info=exc)
    return Response({"status_code": 500, "detail": "Internal Server Error"},
                    status_code=HTTP_500_INTERNAL_SERVER_ERROR, media_type="application/json")
