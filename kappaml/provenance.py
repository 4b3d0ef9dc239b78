"""Where a row comes from: the stream identity that, with the row id, names one example.

Row ids restart at 1 in every CSV, so a row id alone cannot tell a new file's row 1 from an
already learned row 1. Every record carries ``stream``: the data set's name and a digest of the
source file's bytes. A different file (or another data set) is a new stream, i.e. new data;
the same bytes ingested again (a copy, a re-run) are the same stream, so its rows stay
duplicates. The processor and the Spark replay both key their duplicate rule on
(stream, row id) through ``kappaml.learner.learn_step``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_digest", "stream_name"]

_CHUNK = 1 << 20


def file_digest(path: str | Path, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of the file's bytes (about 1 s per GB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def stream_name(dataset: str, path: str | Path) -> str:
    """``dataset@digest``: the stream identity of a CSV file of a data set."""
    return f"{dataset}@{file_digest(path)}"
