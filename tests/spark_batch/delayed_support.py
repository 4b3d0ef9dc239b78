"""A keyed raw log with delayed labels, for the replay tests (issue 17).

``delayed_log`` splits the fleet rows into ``features`` and ``label`` records
(``kappaml.records.make_features`` / ``make_label``), as the producer's ``--label-delay`` does,
and mixes in every case the rules name: labelled records, labels delayed by a random number
of rows, labels that never come, labels before their features, duplicated labels and
features, labels for ids that never come, and records that do not decode. Event times grow
with the position in the log (100 ms apart), so a TTL in seconds of event time and one in
rows both expire some predictions.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kappaml.dataset import Dataset
from kappaml.records import encode_record, make_features, make_label, make_record, model_key

Message = tuple[bytes | None, bytes | None]

BASE_TS = 1_700_000_000_000
TS_STEP_MS = 100


@dataclass
class DelayedLog:
    messages: list[Message]
    # What was planted, to check the counts the rules give (not the rules themselves).
    planted: dict[str, int] = field(default_factory=dict)


def delayed_log(dataset: Dataset, rows: Sequence[Mapping[str, Any]], *, seed: int = 1, max_delay: int = 120,
                drop: float = 0.08, early: float = 0.04, dup_label: float = 0.03, dup_features: float = 0.02,
                labelled_every: int = 9, unknown_labels: int = 6, bad: bool = True, open_tail: int = 0
                ) -> DelayedLog:
    """The messages (Kafka key, value) of ``rows`` as a log with delayed labels, in log order.

    ``open_tail``: the last rows are features only, at the very end of the log: still pending then.
    """
    rng = random.Random(seed)
    planted = dict.fromkeys(("labelled", "features", "labels", "dropped", "early", "dup_label",
                             "dup_features", "unknown_labels", "bad"), 0)
    events: list[tuple[float, int, str, Any]] = []  # (position, tie-break, what, payload)
    tie = 0

    def put(pos: float, what: str, payload: Any) -> None:
        nonlocal tie
        tie += 1
        events.append((pos, tie, what, payload))

    planted["open_tail"] = open_tail
    for number, row in enumerate(rows, start=1):
        key = model_key(dataset, row)
        if number > len(rows) - open_tail:
            put(len(rows) + 2 * max_delay + number, "features", (number, row))
            planted["features"] += 1
            continue
        if number % labelled_every == 0:
            put(number, "labelled", (number, row))
            planted["labelled"] += 1
            continue
        put(number, "features", (number, row))
        planted["features"] += 1
        if rng.random() < dup_features:
            put(number + rng.randint(1, max_delay) + 0.25, "features", (number, row))
            planted["dup_features"] += 1
        if rng.random() < drop:
            planted["dropped"] += 1
            continue
        if rng.random() < early:
            at = number - rng.randint(1, 8) - 0.5  # before its features
            planted["early"] += 1
        else:
            at = number + rng.randint(0, max_delay) + 0.5
        record_id = row[dataset.id_column] if dataset.id_column else number
        label = (record_id, key, float(row[dataset.target]))
        put(at, "label", label)
        planted["labels"] += 1
        if rng.random() < dup_label:
            put(at + rng.randint(1, max_delay), "label", label)
            planted["dup_label"] += 1

    keys = sorted({model_key(dataset, r) for r in rows})
    for i in range(unknown_labels):  # labels whose features never come: orphans once expired
        at = len(rows) * (i + 1) / (unknown_labels + 1) + 0.75
        put(at, "label", (f"ghost-{i}", keys[i % len(keys)], 1.0))
        planted["unknown_labels"] += 1

    events.sort()
    messages: list[Message] = []
    for rank, (_pos, _tie, what, payload) in enumerate(events):
        ts = BASE_TS + rank * TS_STEP_MS
        if what == "labelled":
            number, row = payload
            record = make_record(dataset, number, row, ts)
            key = record["key"]
        elif what == "features":
            number, row = payload
            record = make_features(dataset, number, row, ts)
            key = record["key"]
        else:
            record_id, key, target = payload
            record = make_label(dataset, record_id, key, target, ts)
        messages.append((key.encode("utf-8"), encode_record(record)))

    if bad:
        # Records that do not decode, or belong to no key here: each is invalid, never a crash.
        some = json.loads(messages[len(messages) // 3][1])
        key = some["key"].encode("utf-8")
        bad_values = [
            json.dumps({"kind": "label", "id": "t999991", "key": some["key"], "ts": BASE_TS,
                        "source": dataset.name, "target": "lots"}).encode(),  # not a number
            json.dumps({"kind": "label", "key": some["key"], "ts": BASE_TS, "source": dataset.name,
                        "target": 1.0}).encode(),  # no id
            json.dumps({"kind": "features", "id": "t999992", "key": some["key"], "ts": BASE_TS,
                        "source": dataset.name, "row": {}}).encode(),  # no feature
            json.dumps({"kind": "forecast", "id": "t999993", "key": some["key"], "ts": BASE_TS,
                        "source": dataset.name}).encode(),  # an unknown kind
            b'{"kind":"label","id":"t999994","key":"' + key + b'","target":1e999}',  # not finite
        ]
        other = next(k for k in keys if k.encode("utf-8") != key)
        bad_values.append(encode_record(make_label(dataset, "t999995", other, 1.0, BASE_TS)))  # other key
        for i, value in enumerate(bad_values):
            messages.insert(len(messages) * (i + 1) // (len(bad_values) + 1), (key, value))
        planted["bad"] = len(bad_values)
    return DelayedLog(messages, planted)


# ---------------------------------------------------------------- the sequential reference

# One output row as the replay writes it: (status, row_id, y_true, y_pred, generation,
# served_offset, delay_ms, delay_rows, expired), keyed by (partition, offset) in order of emission.
Row = tuple[Any, ...]


@dataclass
class CoreLoop:
    """States per (partition, key), and per (partition, offset) the rows a record gave."""

    states: dict[tuple[int, str], Any] = field(default_factory=dict)
    rows: dict[tuple[int, int], list[Row]] = field(default_factory=dict)
    invalid: list[tuple[int, int]] = field(default_factory=list)


def core_loop(messages: Any, dataset: Dataset, spec: str, version: str, policy: Any, *, drift: Any = None,
              window: int = 500) -> CoreLoop:
    """The processor's rules for one spec with plain Python: every message in (partition, offset)
    order, decoded by ``kappaml.records.decode``, handled by ``kappaml.learner.apply_record``."""
    from kappaml.learner import KeyState, apply_record
    from kappaml.lineup import CONTROL_KEY_BYTES
    from kappaml.records import FeaturesRecord, InvalidRecord, decode

    loop = CoreLoop()
    for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        p, off = msg.partition(), msg.offset()
        if msg.key() == CONTROL_KEY_BYTES:
            continue
        try:
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            record = decode(dataset, msg.value())
            if key is None or record.key != key:
                raise InvalidRecord("key mismatch")
        except (InvalidRecord, UnicodeDecodeError):
            loop.invalid.append((p, off))
            continue
        state = loop.states.get((p, key))
        if state is None:
            state = KeyState.new(key, dataset, spec, version, window=window, drift=drift)
            loop.states[(p, key)] = state
        outcome = apply_record(state, record, off, policy)
        rows = loop.rows.setdefault((p, off), [])
        y = None if isinstance(record, FeaturesRecord) else record.y
        for e in outcome.expired:
            r = e.learned
            rows.append(("learned", str(e.id), r.y_true, r.y_pred, r.generation, r.served_offset, r.delay_ms,
                         r.delay_rows, True) if r is not None else
                        ("expired", str(e.id), None, e.y_pred, e.generation, e.offset, None, None, True))
        if outcome.served is not None:
            s = outcome.served
            rows.append(("served", str(s.id), None, s.y_pred, s.generation, None, None, None, None))
        if outcome.status == "learned":
            r = outcome.learned
            delayed = r.served_offset is not None
            rows.append(("learned", str(r.id), r.y_true, r.y_pred, r.generation, r.served_offset, r.delay_ms,
                         r.delay_rows if delayed else None, None))
        elif outcome.status == "error":
            rows.append(("invalid", str(record.id), y, None, state.generation, None, None, None, None))
        elif outcome.status != "pending":
            rows.append((outcome.status, str(record.id), y, None, state.generation, None, None, None, None))
    return loop


def replay_rows(frame: Any) -> dict[tuple[int, int], list[Row]]:
    """The replay's prediction rows (one spec) in the shape of ``CoreLoop.rows``."""
    import pandas as pd

    def plain(v: Any) -> Any:
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return None
        return v.item() if hasattr(v, "item") else v

    out: dict[tuple[int, int], list[Row]] = {}
    for r in frame.itertuples():
        row = tuple(plain(v) for v in (r.status, r.row_id, r.y_true, r.y_pred, r.generation, r.served_offset,
                                       r.delay_ms, r.delay_rows, r.expired))
        out.setdefault((int(r.partition), int(r.offset)), []).append(row)
    return out
