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

With a ``LabelSchedule`` (delayed labels, ``producer.labels``) a valid row is a ``features`` event
and, later, a ``label`` event instead of one ``record``; event ids are then ``"rows:labels"``
pairs, and the positions above are the ``rows`` part.
"""

from __future__ import annotations

import collections
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
from kappaml.records.raw import FEATURES, LABEL
from producer import sse
from producer.labels import LabelSchedule, format_pair

__all__ = ["Replay", "ReplayParams"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@dataclass(frozen=True)
class ReplayParams:
    """What one client asked for. ``rate`` in rows/s (0: as fast as the client reads)."""

    rate: float = 0.0
    loop: bool = False
    start: int = 1
    last_event_id: int | None = None
    # Delayed labels: the labels part of a ``rows:labels`` Last-Event-ID (``last_event_id`` is
    # its rows part); None: a stream without delayed labels, or no Last-Event-ID.
    last_labels: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate}")
        if self.start < 1:
            raise ValueError(f"start must be >= 1, got {self.start}")
        if self.last_event_id is not None and self.last_event_id < 0:
            raise ValueError(f"Last-Event-ID must be >= 0, got {self.last_event_id}")
        if self.last_labels is not None and not (
                self.last_event_id is not None and 0 <= self.last_labels <= self.last_event_id):
            raise ValueError(f"the labels part of Last-Event-ID must be in 0..rows, got {self.last_labels}")

    @property
    def first_id(self) -> int:
        """The id of the first event to send: right after Last-Event-ID, else ``start``."""
        return self.start if self.last_event_id is None else self.last_event_id + 1

    @property
    def labels_done(self) -> int:
        """Delayed labels: the position of the last row whose label the client has (or never gets)."""
        if self.last_labels is not None:
            return self.last_labels
        return self.first_id - 1


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


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _LabelCursor(_Cursor):
    """``_Cursor`` with delayed labels: ``features`` now, ``label`` when the schedule says.

    Outstanding labels wait in ``_due`` in position order as (position, due, record id, key,
    target), ``due`` being a row position (``delay_rows``) or event time in ms (``delay_s``).
    """

    def __init__(self, table: CsvTable, first_id: int, labels_done: int, loop: bool, n_rows: int | None,
                 stream: str, passes: Callable[[int], CsvTable] | None, schedule: LabelSchedule,
                 now_ms: Callable[[], int] = _wall_ms) -> None:
        super().__init__(table, first_id, loop, n_rows, stream, passes)
        self.schedule = schedule
        self._now_ms = now_ms
        self._by_rows = schedule.delay_rows is not None
        self._delay = schedule.delay_rows if schedule.delay_rows is not None else schedule.delay_ms
        self.last_labels = labels_done
        self.labels_sent = 0
        self._due: collections.deque[tuple[int, int, str, str, str]] = collections.deque()
        self._target = self.dataset.target
        if labels_done < self.last_id:
            self._rebuild(labels_done + 1, self.last_id)

    @property
    def last_event(self) -> str:
        return format_pair(self.last_id, self.last_labels)

    def _ids(self, position: int, pass_index: int, values: dict) -> tuple[str, str, str]:
        """(record id, its JSON, key JSON) of a row, as ``_Cursor.take`` writes them."""
        if self._id_column is None:
            rid = str(position)
            return rid, rid, self._global_key or _dumps(str(values[self.dataset.key or ""]))
        raw = str(values[self._id_column])
        rid = raw if pass_index == 0 else f"{raw}#{pass_index}"
        return rid, _dumps(rid), self._global_key or _dumps(str(values[self.dataset.key or ""]))

    def _rebuild(self, first: int, last: int) -> None:
        """Resuming: the labels of rows ``first..last`` were not sent yet; read them again."""
        due_ms = self._now_ms() + self._delay
        for position, pass_index, row in self._positions(first, last):
            if row.values is None:
                continue
            rid, rid_json, key = self._ids(position, pass_index, row.values)
            if not self.schedule.dropped(rid):
                due = position + self._delay if self._by_rows else due_ms
                self._due.append((position, due, rid_json, key, _dumps(row.values[self._target])))

    def _positions(self, first: int, last: int) -> Iterator[tuple[int, int, Row]]:
        """(position, pass, row) of the rows at positions ``first..last`` (fewer at the end of a file)."""
        n = self.n_rows if self.loop and self.n_rows else None
        position = first
        while position <= last:
            pass_index, offset = divmod(position - 1, n) if n else (0, position - 1)
            rows = self._table(pass_index).rows(offset + 1)
            read = 0
            try:
                for row in rows:
                    yield position, pass_index, row
                    position += 1
                    read += 1
                    if position > last:
                        return
            finally:
                rows.close()  # type: ignore[attr-defined]
            if n is None or not read:
                return  # the end of the file

    def _send_due(self, out: list[str], flush: bool = False) -> None:
        due_queue = self._due
        if not due_queue:
            return
        now = self._now_ms()
        clock = self.last_id if self._by_rows else now
        head = self._source + self._stream
        while due_queue and (flush or due_queue[0][1] <= clock):
            position, _due, rid, key, target = due_queue.popleft()
            self.last_labels = position
            self.labels_sent += 1
            out.append(
                f'id: {self.last_id}:{position}\nevent: {LABEL}\ndata: {{"id":{rid},"key":{key},"ts":{now},'
                f'"kind":"{LABEL}","source":{head},"target":{target}}}\n\n'
            )

    def take(self, max_rows: int) -> tuple[bytes, int]:
        out: list[str] = []
        count = 0
        self._send_due(out)  # labels that came due while the stream was idle (or before a resumption)
        target = self._target
        repeat = self._pass_field()
        source = self._source + self._stream
        by_rows, delay, due_queue, dropped = self._by_rows, self._delay, self._due, self.schedule.dropped
        while count < max_rows and not self.done:
            row = next(self._rows, None)
            if row is None:
                if not self.loop:
                    self._send_due(out, flush=True)  # the end of the file: every label comes now
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
                out.append(f"id: {eid}:{self.last_labels}\nevent: invalid\ndata: {_dumps(payload)}\n\n")
            else:
                values = row.values
                rid, rid_json, key = self._ids(eid, self.pass_index, values)
                ts = self._now_ms()
                features = {c: v for c, v in values.items() if c != target}
                out.append(
                    f'id: {eid}:{self.last_labels}\nevent: {FEATURES}\ndata: {{"id":{rid_json},"key":{key},'
                    f'"ts":{ts},"kind":"{FEATURES}","source":{source}{repeat},"row":{_dumps(features)}}}\n\n'
                )
                if not dropped(rid):
                    due_queue.append((eid, eid + delay if by_rows else ts + delay, rid_json, key,
                                      _dumps(values[target])))
            if due_queue:
                self._send_due(out)
        return "".join(out).encode("utf-8"), count


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
        labels: LabelSchedule | None = None,
        now_ms: Callable[[], int] = _wall_ms,
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
        self.labels_sent = 0  # label events (delayed labels), every client
        self.stream_id = stream
        self.passes = passes
        self.labels = labels  # delayed labels: features now, the label later (producer.labels)
        self._now_ms = now_ms

    def _batch_size(self, rate: float) -> int:
        # Paced streams send about 20 batches a second, so pacing stays smooth.
        return self.batch_rows if rate == 0 else max(1, min(self.batch_rows, int(rate / 20)))

    async def stream(self, params: ReplayParams, stop: threading.Event) -> AsyncIterator[bytes]:
        """The SSE bytes for one client, ending with an ``end`` event (unless looping or stopped)."""
        yield sse.retry(self.retry_ms)
        n_rows = await anyio.to_thread.run_sync(self.table.count_rows) if params.loop else None
        if self.labels is None:
            cursor = _Cursor(self.table, params.first_id, params.loop, n_rows, self.stream_id, self.passes)
        else:
            cursor = await anyio.to_thread.run_sync(
                lambda: _LabelCursor(self.table, params.first_id, params.labels_done, params.loop, n_rows,
                                     self.stream_id, self.passes, self.labels, self._now_ms))  # type: ignore[arg-type]
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
                if isinstance(cursor, _LabelCursor):
                    self.labels_sent += cursor.labels_sent
                    cursor.labels_sent = 0
                if cursor.done:
                    last = cursor.last_event if isinstance(cursor, _LabelCursor) else cursor.last_id
                    end = {"last_id": last, "rows": self.table.n_rows}
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
