"""Server-Sent Events framing (WHATWG HTML, "Server-sent events", event stream format).

Every field is one ``name: value`` line, an event ends with an empty line, and a line starting
with ``:`` is a comment (used as a heartbeat). Values may not contain line breaks: multi-line
data becomes several ``data:`` lines, and ids with CR, LF or NUL are refused (a client would
silently ignore or split them, which breaks resumption).
"""

from __future__ import annotations

__all__ = ["comment", "encode_event", "retry"]

_FORBIDDEN_IN_FIELD = ("\r", "\n", "\0")


def _check_field(name: str, value: str) -> None:
    if any(c in value for c in _FORBIDDEN_IN_FIELD):
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {value!r}")


def encode_event(data: str, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One event; ``data`` may span lines (each becomes a ``data:`` line)."""
    parts: list[str] = []
    if id is not None:
        text = str(id)
        _check_field("id", text)
        parts.append(f"id: {text}\n")
    if event is not None:
        _check_field("event", event)
        parts.append(f"event: {event}\n")
    # splitlines() would also split on U+2028 etc.; SSE only knows CR, LF and CRLF.
    for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def comment(text: str = "") -> bytes:
    """A comment line (ignored by clients; keeps idle connections and proxies alive)."""
    _check_field("comment", text)
    return f": {text}\n\n".encode() if text else b":\n\n"


def retry(milliseconds: int) -> bytes:
    """The reconnection delay hint for clients."""
    if milliseconds < 0:
        raise ValueError(f"retry must be >= 0 ms, got {milliseconds}")
    return f"retry: {int(milliseconds)}\n\n".encode()
