"""Cross-origin access to kappaml's HTTP services, one setting for all of them.

``KAPPAML_CORS_ORIGINS`` (or ``--cors-origins``) lists the origins whose browser pages may call
the prediction API and read the SSE endpoints (the producer's ``/events``, the feeds'
``/streams/*``): comma-separated ``scheme://host[:port]``, or ``*`` for any origin. Empty (the
default): no ``Access-Control-Allow-Origin`` header, so a page on another origin cannot read
any answer; same-origin pages and non-browser clients are not affected either way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from litestar.config.cors import CORSConfig

__all__ = ["ENV", "add_cors_flag", "cors_config", "parse_origins"]

ENV = "KAPPAML_CORS_ORIGINS"


def parse_origins(text: str | None) -> tuple[str, ...]:
    """The origins of a comma-separated list; ``ValueError`` naming a malformed one."""
    origins: list[str] = []
    for item in (text or "").split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*":
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValueError(f"CORS origin {origin!r} is not scheme://host[:port] (or *)")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """Litestar's CORS settings allowing ``origins``; None (no CORS headers at all) when empty."""
    if not origins:
        return None
    # Last-Event-ID: an EventSource resuming after a reconnect sends it.
    return CORSConfig(allow_origins=list(origins), allow_methods=["GET", "POST", "OPTIONS"],
                      allow_headers=["Content-Type", "Last-Event-ID"], allow_credentials=False,
                      max_age=600)


def add_cors_flag(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    parser.add_argument("--cors-origins", default=env.get(ENV, ""),
                        help="comma-separated origins whose browser pages may call this service, or * "
                             f"(env {ENV}; default: none)")
