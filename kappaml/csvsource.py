"""Streaming, validating reader of a declared CSV: constant memory, seekable by row number.

A row is one physical line. Quoted fields (``"2.0"``, ``"a,b"``, ``""`` escapes) are read as in
RFC 4180, but a quoted field may not span lines: a stray quote then spoils one row, instead of
swallowing the rest of the file, and the byte offset of every row stays cheap to find.

Row numbers are 1-based and count every line after the header, including empty and bad ones,
so a row's number never depends on how its neighbours parse. Seeking uses a sparse index (the
byte offset of every ``index_every``-th row) built lazily as rows are read, shared by every
reader of the same ``CsvTable``; a 1 GB file therefore needs a few hundred kB of index at most.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kappaml.dataset import Dataset
from kappaml.records import InvalidRecord, RowParser

__all__ = ["CsvHeaderError", "CsvTable", "Row"]

_BOM = b"\xef\xbb\xbf"


class CsvHeaderError(ValueError):
    """The CSV cannot be served at all: unreadable, or its header lacks declared columns."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the CSV: its typed ``values`` (declared columns) or the ``error`` that spoiled it."""

    number: int
    values: dict[str, Any] | None
    error: InvalidRecord | None


def _split(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")
    # strict: a quote in the middle of an unquoted field, or an unclosed quote, is an error.
    return next(csv.reader((line,), strict=True))


class CsvTable:
    """A CSV file of ``dataset``, read row by row; thread-safe, one instance per served file."""

    def __init__(
        self,
        path: str | Path,
        dataset: Dataset,
        *,
        index_every: int = 4096,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        if index_every < 1:
            raise ValueError(f"index_every must be >= 1, got {index_every}")
        if max_line_bytes < 64:
            raise ValueError(f"max_line_bytes must be >= 64, got {max_line_bytes}")
        self.path = Path(path)
        self.dataset = dataset
        self.index_every = index_every
        self.max_line_bytes = max_line_bytes
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()  # one full scan at a time; later callers reuse it
        self._load_header()

    # ------------------------------------------------------------------ header and index

    def _load_header(self) -> None:
        try:
            stat = self.path.stat()
            with self.path.open("rb") as fh:
                raw = fh.readline(self.max_line_bytes + 1)
                data_start = fh.tell()
        except OSError as exc:
            raise CsvHeaderError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not raw.strip():
            raise CsvHeaderError(f"{self.path} is empty or has an empty header line")
        if len(raw) > self.max_line_bytes:
            raise CsvHeaderError(f"{self.path}: header line is longer than {self.max_line_bytes} bytes")
        if raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
            columns = [c.strip() for c in _split(text)]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CsvHeaderError(f"{self.path}: unreadable header: {exc}") from None
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise CsvHeaderError(f"{self.path}: duplicate header columns {dupes}")
        missing = [c for c in self.dataset.columns if c not in columns]
        if missing:
            raise CsvHeaderError(
                f"{self.path}: header lacks column(s) {missing} declared by dataset "
                f"{self.dataset.name!r} (header: {columns})"
            )
        self.header: tuple[str, ...] = tuple(columns)
        # Only declared columns are looked at; undeclared extra columns are carried but ignored.
        self._parser = RowParser(self.dataset)
        self._positions = tuple(columns.index(c) for c in self._parser.columns)
        self._signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        # _offsets[i] = byte offset of row i * index_every + 1.
        self._offsets: list[int] = [data_start]
        self._n_rows: int | None = None

    def _check_unchanged(self) -> None:
        """A file replaced or rewritten under us invalidates the index: start over."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise CsvHeaderError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if (stat.st_size, stat.st_mtime_ns, stat.st_ino) != self._signature:
            with self._lock:
                self._load_header()

    def _note_offset(self, number: int, offset: int) -> None:
        if (number - 1) % self.index_every:
            return
        slot = (number - 1) // self.index_every
        if slot == len(self._offsets):
            with self._lock:
                if slot == len(self._offsets):
                    self._offsets.append(offset)

    def _nearest(self, number: int) -> tuple[int, int]:
        """(row number, byte offset) of the indexed row closest before ``number``."""
        slot = min((number - 1) // self.index_every, len(self._offsets) - 1)
        return slot * self.index_every + 1, self._offsets[slot]

    @property
    def n_rows(self) -> int | None:
        """The number of rows, once some reader has reached the end of the file."""
        return self._n_rows

    def count_rows(self) -> int:
        """The number of rows (scans the rest of the file once, building the index on the way)."""
        self._check_unchanged()
        with self._count_lock:
            if self._n_rows is None:
                first, offset = self._nearest(1 << 62)
                with self.path.open("rb") as fh:
                    fh.seek(offset)
                    for _ in self._lines(fh, first):
                        pass
            assert self._n_rows is not None
            return self._n_rows

    @property
    def index_entries(self) -> int:
        return len(self._offsets)

    # ------------------------------------------------------------------ reading

    def _lines(self, fh: IO[bytes], number: int) -> Iterator[tuple[int, int, bytes | None]]:
        """(row number, offset, raw line or None when too long) from the current position."""
        limit = self.max_line_bytes
        offset = fh.tell()
        readline = fh.readline
        while True:
            line = readline(limit + 1)
            if not line:
                self._n_rows = number - 1
                return
            self._note_offset(number, offset)
            next_offset = offset + len(line)
            if len(line) > limit and not line.endswith(b"\n"):
                # Skip the rest of an over-long line without holding it in memory.
                while True:
                    chunk = readline(limit)
                    next_offset += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                yield number, offset, None
            else:
                yield number, offset, line
            offset = next_offset
            number += 1

    def parse(self, number: int, line: bytes | None) -> Row:
        """Validate one raw line (without or with its line ending) as row ``number``."""
        if line is None:
            return Row(number, None, InvalidRecord(f"line longer than {self.max_line_bytes} bytes",
                                                   row=number))
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Row(number, None, InvalidRecord(
                f"not valid UTF-8 ({exc.reason} at byte {exc.start})", row=number,
                value=line.decode("utf-8", "backslashreplace").rstrip("\r\n")))
        text = text.rstrip("\r\n")
        if not text.strip():
            return Row(number, None, InvalidRecord("empty line", row=number, value=text))
        try:
            fields = _split(text)
        except csv.Error as exc:
            return Row(number, None, InvalidRecord(f"malformed quoting: {exc}", row=number, value=text))
        if len(fields) != len(self.header):
            kind = "missing" if len(fields) < len(self.header) else "extra"
            return Row(number, None, InvalidRecord(
                f"{kind} columns: expected {len(self.header)} fields, got {len(fields)}",
                row=number, value=text))
        try:
            values = self._parser.parse_fields(fields, self._positions, number)
        except InvalidRecord as exc:
            return Row(number, None, exc)
        return Row(number, values, None)

    def rows(self, start: int = 1) -> Iterator[Row]:
        """Every row from row number ``start`` (1-based) to the end of the file, validated.

        The generator holds one open file handle; close it (or exhaust it) to release it.
        """
        if start < 1:
            raise ValueError(f"start must be >= 1, got {start}")
        self._check_unchanged()
        if self._n_rows is not None and start > self._n_rows:
            return
        first, offset = self._nearest(start)
        parse = self.parse
        with self.path.open("rb") as fh:
            fh.seek(offset)
            for number, _offset, line in self._lines(fh, first):
                if number >= start:
                    yield parse(number, line)

    def __repr__(self) -> str:
        return f"CsvTable({str(self.path)!r}, dataset={self.dataset.name!r})"
