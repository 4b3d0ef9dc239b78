"""One structlog set-up for every kappaml program.

Readable console lines on a terminal, JSON lines everywhere else (files, CI, containers),
so the same program is pleasant by hand and machine-readable in production.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger", "redact_secrets", "register_secret"]


# Keys whose values never reach a log line (client configs: "sasl.password", "sasl.jaas.config").
_SECRET_WORDS = ("password", "secret", "jaas")


# Secret values known to this process (register_secret): masked wherever they appear in a line.
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line of this process (e.g. the SASL password, in a client's message)."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _SECRETS:
            if secret in value:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_masked(v) for v in value)
    if isinstance(value, Mapping):
        return {k: ("***" if isinstance(k, str) and any(w in k.lower() for w in _SECRET_WORDS) and v
                    else _masked(v)) for k, v in value.items()}
    return value


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: values under secret-looking keys, also nested in dicts, become ``***``."""
    return _masked(event)  # type: ignore[return-value]


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a
    stream replaced since (pytest's capture, a daemon closing its streams) is not written to."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger (used by Quix Streams and Kafka clients)."""
    if json is None:
        json = not sys.stderr.isatty()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")

    shared: list[structlog.types.Processor] = [
        redact_secrets,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries log through the stdlib: route them through the same renderer.
    handler = logging.StreamHandler(_STDERR)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _ClientGone) for f in asyncio_log.filters):
        asyncio_log.addFilter(_ClientGone())


class _ClientGone(logging.Filter):
    """asyncio warns "socket.send() raised exception." at every write after a client of a
    stream went away; the server notices and closes that stream itself, saying so once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("socket.send() raised exception")


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()
