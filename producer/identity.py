"""The ingest's identity: which stream it follows, so a different file is ingested afresh.

The ingest keeps the last event id it committed under its identity (its consumer group and
transactional id). Event ids restart at 1 in every file, so resuming after another file's last
id would skip rows of the new one: the identity names the stream (data set and file digest,
``kappaml.provenance``) that the SSE server reports in ``GET /health``. A server with delayed
labels (``serve --label-delay``) sends other events with other ids from the same file: its schedule
(``labels.token`` in ``/health``) is part of the identity too.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from kappaml.logging import get_logger

__all__ = ["fetch_served", "fetch_stream", "ingest_identity", "server_json"]

log = get_logger(__name__)

# A schedule token (producer.labels.LabelSchedule.token) is safe in a group and transactional id.
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,80}")


def server_json(url: str, endpoint: str, what: str, *, attempts: int = 30, max_backoff: float = 2.0) -> Any:
    """GET ``endpoint`` beside the SSE server's events ``url`` (``/health``, ``/dataset``), as JSON,
    retried with backoff while the server starts; ``what`` names it in the error."""
    parts = urlsplit(url)
    target = urlunsplit(parts._replace(path=parts.path.rsplit("/", 1)[0] + "/" + endpoint, query=""))
    backoff = 0.2
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.get(target, timeout=5.0)
            response.raise_for_status()
            return response.json()
        except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
            if attempt == attempts:
                raise RuntimeError(f"cannot fetch {what} from {target}: {exc}") from None
            log.info("waiting for the SSE server", url=target, error=str(exc))
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
    raise AssertionError("unreachable")


def fetch_served(url: str, *, attempts: int = 30, max_backoff: float = 2.0) -> tuple[str, str]:
    """(stream, label schedule token) of the SSE server at ``url``; "" for what it does not say."""
    health = server_json(url, "health", "what the SSE server replays", attempts=attempts,
                         max_backoff=max_backoff)
    if not isinstance(health, dict):
        return "", ""
    stream = health.get("stream")
    labels = health.get("labels")
    token = labels.get("token") if isinstance(labels, dict) else None
    return (stream if isinstance(stream, str) else "",
            token if isinstance(token, str) and _TOKEN.fullmatch(token) else "")


def fetch_stream(url: str, *, attempts: int = 30, max_backoff: float = 2.0) -> str:
    """The stream the SSE server at ``url`` replays ("" from a server that does not say)."""
    return fetch_served(url, attempts=attempts, max_backoff=max_backoff)[0]


def ingest_identity(prefix: str, dataset: str, stream: str, labels: str = "") -> str:
    """``<prefix>-ingest-<data set>[-<file digest>][-<label schedule>]``: one identity per stream
    of events followed."""
    digest = stream.rpartition("@")[2] if stream else ""
    return f"{prefix}-ingest-{dataset}" + (f"-{digest}" if digest else "") + (f"-{labels}" if labels else "")
