"""Turning a ``CsvTable`` into an SSE byte stream: event ids, resumption, looping, pacing.

Event ids are positions, never data: without ``loop`` the id of a row is its row number; with
``loop`` the rows of pass ``k`` (0-based) get ``k * n_rows + row number``, so ids keep
increasing across passes and ``Last-Event-ID`` always names one position of one pass. The
record's own ``id`` (the dedup key downstream) is the same number, or, for a data set with an
id column, that column's value (suffixed ``#k`` from the second pass on, so a looped row is a
new example rather than a duplicate). From the second pass of a file on, a record carries
``"pass": k`` (1-based): its row was learned before, so its error is not out of sample. With
fresh passes (the synthetic data set) every pass is new rows and carries no pass number.

File reading and encoding run in worker threads, a batch of rows at a time, so the event loop
keeps serving other clients, heartbeats and ``/health`` while a large file streams.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import anyio
import anyio.to_thread

from kappaml.csvsource import CsvTable, Row
from kappaml.dataset import GLOBAL_KEY
from producer import sse

__all__ = ["Replay", "ReplayParams"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@dataclass(frozen=True)
class ReplayParams:
    """What one client asked for. ``rate`` in rows/s (0: as fast as the client reads)."""

    rate: float = 0.0
    loop: bool = False
    start: int = 1
    last_event_id: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate}")
        if self.start < 1:
            raise ValueError(f"start must be >= 1, got {self.start}")
        if self.last_event_id is not None and self.last_event_id < 0:
            raise ValueError(f"Last-Event-ID must be >= 0, got {self.last_event_id}")

    @property
    def first_id(self) -> int:
        """The id of the first event to send: right after Last-Event-ID, else ``start``."""
        return self.start if self.last_event_id is None else self.last_event_id + 1


class _Cursor:
    """Synchronous walk over the table from one event id on, producing encoded events."""

    def __init__(self, table: CsvTable, first_id: int, loop: bool, n_rows: int | None,
                 stream: str = "", passes: Callable[[int], CsvTable] | None = None) -> None:
        self.table = table
        # Fresh passes: pass k (0-based) reads passes(k), new rows of as many lines (the synthetic
        # generator with another seed), instead of the same file again.
        self.passes = passes
        self.dataset = table.dataset
        self.loop = loop
        self.n_rows = n_rows
        if loop:
            assert n_rows is not None
            self.pass_index, row0 = divmod(first_id - 1, max(n_rows, 1))
            start_row = row0 + 1
        else:
            self.pass_index, start_row = 0, first_id
        self.done = loop and not n_rows  # looping an empty file would spin for ever
        self._rows: Iterator[Row] = iter(()) if self.done else self._table(self.pass_index).rows(start_row)
        self.last_id = first_id - 1
        ds = self.dataset
        self._source = _dumps(ds.name)
        # Row ids are unique within a stream (kappaml.provenance): the record names its stream.
        self._stream = f',"stream":{_dumps(stream)}' if stream else ""
        self._global_key = None if ds.key is not None else _dumps(GLOBAL_KEY)
        self._id_column = ds.id_column

    def _table(self, pass_index: int) -> CsvTable:
        return self.passes(pass_index) if self.passes is not None and pass_index else self.table

    def _pass_field(self) -> str:
        """``,"pass":k`` from the second pass of a file on: rows the model has learned before."""
        return f',"pass":{self.pass_index + 1}' if self.pass_index and self.passes is None else ""

    def _event_id(self, number: int) -> int:
        return self.pass_index * self.n_rows + number if self.loop and self.n_rows else number

    def take(self, max_rows: int) -> tuple[bytes, int]:
        """Up to ``max_rows`` rows as SSE bytes, and how many rows that was."""
        out: list[str] = []
        count = 0
        ds = self.dataset
        repeat = self._pass_field()
        while count < max_rows and not self.done:
            row = next(self._rows, None)
            if row is None:
                if not self.loop:
                    self.done = True
                    break
                self._rows.close()  # type: ignore[attr-defined]
                self.pass_index += 1
                self._rows = self._table(self.pass_index).rows(1)
                repeat = self._pass_field()
                continue
            eid = self._event_id(row.number)
            count += 1
            self.last_id = eid
            if row.values is None:
                assert row.error is not None
                payload = {"id": eid, **row.error.to_dict()}
                out.append(f"id: {eid}\nevent: invalid\ndata: {_dumps(payload)}\n\n")
                continue
            values = row.values
            if self._id_column is None:
                rid = str(eid)
            else:
                raw = str(values[self._id_column])
                rid = _dumps(raw if self.pass_index == 0 else f"{raw}#{self.pass_index}")
            key = self._global_key or _dumps(str(values[ds.key or ""]))
            ts = time.time_ns() // 1_000_000
            out.append(
                f'id: {eid}\nevent: record\ndata: {{"id":{rid},"key":{key},"ts":{ts},'
                f'"source":{self._source}{self._stream}{repeat},"row":{_dumps(values)}}}\n\n'
            )
        return "".join(out).encode("utf-8"), count

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


class Replay:
    """Streams one table to any number of clients; each call of ``stream`` is one client."""

    def __init__(
        self,
        table: CsvTable,
        *,
        heartbeat: float = 15.0,
        retry_ms: int = 3000,
        batch_rows: int = 512,
        clock: Callable[[], float] = time.monotonic,
        stream: str = "",
        passes: Callable[[int], CsvTable] | None = None,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0 s, got {heartbeat}")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self.table = table
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self.batch_rows = batch_rows
        self._clock = clock
        self.sent = 0  # row events sent to every client (the Prometheus metrics read it)
        self.stream_id = stream
        self.passes = passes

    def _batch_size(self, rate: float) -> int:
        # Paced streams send about 20 batches a second, so pacing stays smooth.
        return self.batch_rows if rate == 0 else max(1, min(self.batch_rows, int(rate / 20)))

    async def stream(self, params: ReplayParams, stop: threading.Event) -> AsyncIterator[bytes]:
        """The SSE bytes for one client, ending with an ``end`` event (unless looping or stopped)."""
        yield sse.retry(self.retry_ms)
        n_rows = await anyio.to_thread.run_sync(self.table.count_rows) if params.loop else None
        cursor = _Cursor(self.table, params.first_id, params.loop, n_rows, self.stream_id, self.passes)
        clock = self._clock
        size = self._batch_size(params.rate)
        started = last_sent = clock()
        emitted = 0
        try:
            while not stop.is_set():
                chunk, count = await anyio.to_thread.run_sync(cursor.take, size)
                if chunk:
                    yield chunk
                    last_sent = clock()
                emitted += count
                self.sent += count
                if cursor.done:
                    end = {"last_id": cursor.last_id, "rows": self.table.n_rows}
                    yield sse.encode_event(_dumps(end), event="end")
                    return
                if params.rate:
                    due = started + emitted / params.rate
                    while not stop.is_set():
                        now = clock()
                        if now >= due:
                            break
                        if now - last_sent >= self.heartbeat:
                            yield sse.comment("keep-alive")
                            last_sent = now
                        await anyio.sleep(min(due - now, 0.25, self.heartbeat))
        finally:
            cursor.close()
