"""The ingest stopping because Kafka did not take its records: one line, not a traceback."""

from __future__ import annotations

import logging

__all__ = ["IngestStopped", "quiet_source_traceback"]

# Quix Streams logs what a source raises with its traceback before handing it to the parent.
_QUIX_SOURCE_LOGGER = "quixstreams.sources.base.manager"


class IngestStopped(RuntimeError):
    """Kafka did not take a transaction of raw records: the ingest stops with this one-line reason.

    That transaction never commits, so no reader sees any of it, and a restart resumes after the
    last committed event id: stopping loses nothing. A plain ``str`` argument: the source process
    hands it to the Application's process pickled.
    """


def _not_ours(record: logging.LogRecord) -> bool:
    """Quix's "Error in source" traceback is noise for an ``IngestStopped``: its line says it all."""
    return not (record.exc_info and isinstance(record.exc_info[1], IngestStopped))


def quiet_source_traceback() -> None:
    """In the source's process: Quix Streams logs an ``IngestStopped`` without its traceback."""
    logging.getLogger(_QUIX_SOURCE_LOGGER).addFilter(_not_ours)
