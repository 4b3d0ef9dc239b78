"""Delayed labels on the SSE stream (``serve --label-delay/--label-delay-s/--label-drop``), no broker.

The stream itself (the cursor, so every cut of a stream can be resumed), the app over real HTTP
(uvicorn in a thread), the settings and the ingest side's id handling. The raw topic is checked in
test_ingest_delayed_labels.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from producer_testkit import ThreadServer, read_events, serve_file, write_csv

from kappaml.csvsource import CsvTable
from kappaml.dataset import GLOBAL_KEY, Dataset, Feature
from kappaml.records import FeaturesRecord, LabelRecord, decode
from kappaml.records.raw import FEATURES, LABEL, make_features, make_label
from producer.__main__ import build_parser
from producer.follower import _as_order
from producer.identity import ingest_identity
from producer.labels import LabelSchedule, parse_pair
from producer.replay import _LabelCursor
from producer.settings import ServeSettings

SHOPS = Dataset(name="shops", features=(Feature("price"), Feature("promo", "boolean")), target="sales",
                key="shop", id_column="uid")
SHOPS_HEADER = "uid,shop,price,promo,sales"


def shop_lines(n: int, bad: frozenset[int] = frozenset()) -> list[str]:
    """``n`` rows of three shops; the rows in ``bad`` lack their target (invalid rows)."""
    return [f"u{i},s{i % 3},{i}.25,{'True' if i % 2 else 'False'},{'' if i in bad else i * 7}"
            for i in range(1, n + 1)]


TOY = Dataset(name="toy", features=(Feature("a"),), target="y")


def blocks(data: bytes) -> list[tuple[str, str, dict]]:
    """(id, event, data) of every event in SSE bytes as the cursor writes them (one data line)."""
    out = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return out


def drain(cursor: _LabelCursor, batch: int = 7) -> list[tuple[str, str, dict]]:
    events = []
    while not cursor.done:
        events += blocks(cursor.take(batch)[0])
    cursor.close()
    return events


def ticking(step: int = 100) -> Iterator[int]:
    return itertools.count(1_700_000_000_000, step)


def cursor_of(table: CsvTable, schedule: LabelSchedule, *, after: str | None = None, loop: bool = False,
              n_rows: int | None = None, start: int = 1, clock: Iterator[int] | None = None) -> _LabelCursor:
    if after is None:
        first, done = start, start - 1
    else:
        pair = parse_pair(after)
        assert pair is not None
        first, done = pair[0] + 1, pair[1]
    ticks = clock or itertools.repeat(1_700_000_000_000)
    return _LabelCursor(table, first, done, loop, n_rows, "shops@abc", None, schedule, lambda: next(ticks))


def without_ts(events: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    return [(i, e, {k: v for k, v in d.items() if k != "ts"}) for i, e, d in events]


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> CsvTable:
    path = write_csv(tmp_path_factory.mktemp("labels") / "shops.csv", SHOPS_HEADER,
                     shop_lines(60, bad=frozenset({5, 17, 18})))
    return CsvTable(path, SHOPS)


# ---------------------------------------------------------------------------- the schedule


def test_features_now_label_n_rows_later_in_the_wire_format(shops: CsvTable) -> None:
    schedule = LabelSchedule(delay_rows=4, drop=0.25, seed=3)
    events = drain(cursor_of(shops, schedule))
    valid = [i for i in range(1, 61) if i not in (5, 17, 18)]
    features = [d for _, e, d in events if e == FEATURES]
    labels = [d for _, e, d in events if e == LABEL]
    assert [d["id"] for d in features] == [f"u{i}" for i in valid]
    dropped = {f"u{i}" for i in valid if schedule.dropped(f"u{i}")}
    assert 0 < len(dropped) < len(valid) // 2
    assert [d["id"] for d in labels] == [f"u{i}" for i in valid if f"u{i}" not in dropped]
    assert [e for _, e, _ in events].count("invalid") == 3
    # Each half is exactly what kappaml.records.raw makes of the row (the ts is the send time).
    ts = 1_700_000_000_000
    for d in features:
        i = int(d["id"][1:])
        row = {"price": i + 0.25, "promo": bool(i % 2), "sales": float(i * 7), "shop": f"s{i % 3}",
               "uid": f"u{i}"}
        assert d == make_features(SHOPS, i, row, ts, "shops@abc")
        assert d["key"] == f"s{i % 3}"
    for d in labels:
        i = int(d["id"][1:])
        assert d == make_label(SHOPS, f"u{i}", f"s{i % 3}", float(i * 7), ts, "shops@abc")
    # ... and what the processor and the replay decode (kappaml.records.decode).
    for _, kind, d in events:
        if kind == FEATURES:
            decoded = decode(SHOPS, json.dumps(d).encode())
            assert isinstance(decoded, FeaturesRecord) and decoded.x == {"price": d["row"]["price"],
                                                                         "promo": d["row"]["promo"]}
        elif kind == LABEL:
            decoded = decode(SHOPS, json.dumps(d).encode())
            assert isinstance(decoded, LabelRecord) and decoded.y == d["target"]
        else:
            continue
        assert (decoded.id, decoded.key, decoded.stream) == (d["id"], d["key"], "shops@abc")
    # The label of row r comes right after the features of row r + 4 (the last four at the end).
    position = {("f", int(d["id"][1:])): n for n, (_, e, d) in enumerate(events) if e == FEATURES}
    for n, (event_id, kind, d) in enumerate(events):
        if kind != LABEL:
            continue
        r = int(d["id"][1:])
        rows, labels_done = parse_pair(event_id)  # type: ignore[misc]
        assert labels_done == r
        if r + 4 <= 60:
            assert rows == r + 4 and n > position[("f", r)]
        else:
            assert rows == 60  # sent at the end of the file, before `end`


def test_ids_are_unique_and_ordered_across_both_kinds(shops: CsvTable) -> None:
    events = drain(cursor_of(shops, LabelSchedule(delay_rows=2, drop=0.1, seed=9)))
    order = [parse_pair(i) for i, _, _ in events]
    assert all(a < b for a, b in itertools.pairwise(order))  # type: ignore[operator]
    assert len({i for i, _, _ in events}) == len(events)
    assert [_as_order(i) for i, _, _ in events] == order  # the ingest orders them the same way


def test_a_delay_of_zero_sends_each_label_right_after_its_features(shops: CsvTable) -> None:
    events = drain(cursor_of(shops, LabelSchedule(delay_rows=0)))
    kinds = [(e, d.get("id")) for _, e, d in events if e != "invalid"]
    assert kinds == [k for i in range(1, 61) if i not in (5, 17, 18)
                     for k in ((FEATURES, f"u{i}"), (LABEL, f"u{i}"))]


def test_drops_are_a_seeded_share_the_same_every_time() -> None:
    ids = [str(i) for i in range(1, 20_001)]
    one = LabelSchedule(delay_rows=1, drop=0.05, seed=1)
    dropped = {i for i in ids if one.dropped(i)}
    assert 0.04 < len(dropped) / len(ids) < 0.06
    assert dropped == {i for i in ids if LabelSchedule(delay_s=3, drop=0.05, seed=1).dropped(i)}
    assert dropped != {i for i in ids if LabelSchedule(delay_rows=1, drop=0.05, seed=2).dropped(i)}
    assert not any(LabelSchedule(delay_rows=1).dropped(i) for i in ids)
    assert all(LabelSchedule(delay_rows=1, drop=1.0).dropped(i) for i in ids[:100])


def test_seconds_of_event_time(shops: CsvTable) -> None:
    # Every clock reading advances the event time by 100 ms; a label waits 1.5 s of it.
    events = drain(cursor_of(shops, LabelSchedule(delay_s=1.5), clock=ticking()))
    sent = {d["id"]: d["ts"] for _, e, d in events if e == FEATURES}
    last_features_ts = max(sent.values())
    labels = [d for _, e, d in events if e == LABEL]
    assert [d["id"] for d in labels] == list(sent)  # all of them, in row order
    for d in labels:
        if d["ts"] < last_features_ts:
            assert d["ts"] >= sent[d["id"]] + 1500
    early = [d for d in labels if d["ts"] >= last_features_ts]
    assert len(early) < len(labels)  # only the tail waits for the end of the file


# ---------------------------------------------------------------------------- exact resumption


@pytest.mark.parametrize("schedule", [LabelSchedule(delay_rows=5, drop=0.2, seed=4),
                                      LabelSchedule(delay_rows=0, drop=0.5, seed=2),
                                      LabelSchedule(delay_s=0.45, drop=0.1, seed=1)])
def test_resuming_after_any_event_sends_exactly_the_events_after_it(shops: CsvTable,
                                                                     schedule: LabelSchedule) -> None:
    full = drain(cursor_of(shops, schedule, clock=ticking()))
    for cut in range(len(full)):
        rest = drain(cursor_of(shops, schedule, after=full[cut][0], clock=ticking()), batch=5)
        if schedule.delay_rows is not None:
            # Rows: the very same events, in the very same order.
            assert without_ts(rest) == without_ts(full[cut + 1:]), cut
        else:
            # Seconds: the labels outstanding at the cut may come later, never twice or never.
            def halves(events: list[tuple[str, str, dict]]) -> list[str]:
                return sorted(repr((e, d)) for _, e, d in without_ts(events))

            assert halves(rest) == halves(full[cut + 1:]), cut
            order = [parse_pair(i) for i, _, _ in rest]
            assert all(a < b for a, b in itertools.pairwise(order))  # type: ignore[operator]


def test_resuming_a_looping_stream_across_passes(tmp_path: Path) -> None:
    table = CsvTable(write_csv(tmp_path / "shops.csv", SHOPS_HEADER, shop_lines(7)), SHOPS)
    schedule = LabelSchedule(delay_rows=3, drop=0.2, seed=5)

    def first(cursor: _LabelCursor, n: int) -> list[tuple[str, str, dict]]:
        out: list[tuple[str, str, dict]] = []
        while len(out) < n:
            out += blocks(cursor.take(1)[0])
        cursor.close()
        return out

    full = first(cursor_of(table, schedule, loop=True, n_rows=7), 50)
    ids = [d["id"] for _, e, d in full if e == FEATURES]
    assert ids[:9] == [f"u{i}" for i in range(1, 8)] + ["u1#1", "u2#1"]
    assert [d.get("pass") for _, e, d in full if e == FEATURES][6:9] == [None, 2, 2]
    for cut in range(30):
        rest = first(cursor_of(table, schedule, after=full[cut][0], loop=True, n_rows=7), 15)
        assert without_ts(rest[:15]) == without_ts(full[cut + 1:cut + 16]), cut


# ---------------------------------------------------------------------------- the app over HTTP


@pytest.fixture(scope="module")
def delayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    path = write_csv(tmp_path_factory.mktemp("labels-http") / "toy.csv", "a,y",
                     [f"{i}.5,{i}" for i in range(1, 101)])
    with serve_file(path, TOY, labels=LabelSchedule(delay_rows=10, drop=0.1, seed=1)) as server:
        yield server


def test_the_stream_over_http_and_its_resumption(delayed: ThreadServer) -> None:
    events = read_events(delayed.url)
    assert events[-1].event == "end"
    body = events[:-1]
    assert {e.event for e in body} == {FEATURES, LABEL}
    assert sum(e.event == FEATURES for e in body) == 100
    schedule = LabelSchedule(delay_rows=10, drop=0.1, seed=1)
    assert [json.loads(e.data)["id"] for e in body if e.event == LABEL] == \
        [i for i in range(1, 101) if not schedule.dropped(str(i))]
    for d in (json.loads(e.data) for e in body):
        assert d["key"] == GLOBAL_KEY
    assert json.loads(events[-1].data) == {"last_id": body[-1].id, "rows": 100}
    for cut in (0, 17, 60, len(body) - 3):
        rest = read_events(delayed.url, headers={"Last-Event-ID": body[cut].id})
        assert [(e.id, e.event) for e in rest[:-1]] == [(e.id, e.event) for e in body[cut + 1:]]
    assert [e.event for e in read_events(delayed.url, headers={"Last-Event-ID": body[-1].id})] == ["end"]


def test_health_names_the_schedule_and_plain_ids_are_refused(delayed: ThreadServer) -> None:
    health = httpx.get(f"{delayed.base}/health").json()
    assert health["labels"] == {"delay_rows": 10, "delay_s": None, "drop": 0.1, "seed": 1,
                                "token": "labels-r10-drop0.1-seed1"}
    for bad in ("37", "3:7", "a:b", "1:2:3"):
        response = httpx.get(delayed.url, headers={"Last-Event-ID": bad})
        assert response.status_code == 400, bad
        assert "ROWS:LABELS" in response.json()["detail"]


def test_a_stream_without_delayed_labels_is_unchanged(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "toy.csv", "a,y", ["1.5,1", "2.5,2"])
    with serve_file(path, TOY) as server:
        events = read_events(server.url)
        assert [(e.id, e.event) for e in events[:-1]] == [("1", "record"), ("2", "record")]
        assert events[-1].event == "end"
        assert httpx.get(f"{server.base}/health").json()["labels"] is None
        assert httpx.get(server.url, headers={"Last-Event-ID": "1:0"}).status_code == 400


# ---------------------------------------------------------------------------- settings, ingest side


def serve_settings(argv: list[str], env: dict[str, str] | None = None) -> ServeSettings:
    env = env or {}
    return ServeSettings.from_args(build_parser(env).parse_args(["serve", "--csv", "x.csv", *argv]), env)


def test_flags_and_variables() -> None:
    assert serve_settings([]).server.labels is None
    assert serve_settings(["--label-delay", "500"]).server.labels == LabelSchedule(delay_rows=500, seed=42)
    seconds = serve_settings(["--label-delay-s", "2.5", "--label-drop", "0.05", "--seed", "1"])
    assert seconds.server.labels == LabelSchedule(delay_s=2.5, drop=0.05, seed=1)
    env = {"KAPPAML_LABEL_DELAY": "200", "KAPPAML_LABEL_DROP": "0.05", "KAPPAML_SYNTHETIC_SEED": "7"}
    assert serve_settings([], env).server.labels == LabelSchedule(delay_rows=200, drop=0.05, seed=7)
    # A delay flag wins over both delay variables.
    assert serve_settings(["--label-delay-s", "3"], env).server.labels == \
        LabelSchedule(delay_s=3.0, drop=0.05, seed=7)
    for argv, env in ((["--label-drop", "0.1"], {}), (["--label-delay", "-1"], {}),
                      (["--label-delay", "5", "--label-drop", "1.5"], {}),
                      ([], {"KAPPAML_LABEL_DELAY": "1", "KAPPAML_LABEL_DELAY_S": "1"}),
                      ([], {"KAPPAML_LABEL_DELAY": "soon"})):
        with pytest.raises(ValueError):
            serve_settings(argv, env)
    with pytest.raises(SystemExit):  # argparse: the two delays exclude each other
        serve_settings(["--label-delay", "5", "--label-delay-s", "5"])


def test_the_ingest_identity_names_the_schedule() -> None:
    plain = ingest_identity("kappaml", "co2", "co2@0123abcd")
    assert plain == "kappaml-ingest-co2-0123abcd"
    token = LabelSchedule(delay_rows=500).token
    assert ingest_identity("kappaml", "co2", "co2@0123abcd", token) == f"{plain}-labels-r500"
    assert _as_order("12") == (12,) and _as_order("12:3") == (12, 3) and _as_order("x") is None


def test_make_run_passes_the_flags_to_the_sse_server_and_the_processor() -> None:
    from infra.__main__ import _flags, _parser, _serve_args
    from infra.stack import default_programs

    args = _parser().parse_args(["run", "--label-delay", "500", "--label-drop", "0.05", "--seed", "1",
                                 "--label-ttl", "2000"])
    programs = {p.name: p.argv for p in default_programs(
        "127.0.0.1:9092", None, 8000, 8501, serve_args=_serve_args(args),
        processor_args=_flags(args, "label_ttl", "on_missing_label"))}
    serve = programs["sse-server"]
    assert serve[-6:] == ("--label-delay", "500", "--label-drop", "0.05", "--seed", "1")
    assert programs["processor"][-2:] == ("--label-ttl", "2000")
    plain = {p.name: p.argv for p in default_programs("127.0.0.1:9092", None, 8000, 8501)}
    assert not any("label" in a for argv in plain.values() for a in argv)
    # What the SSE server makes of them.
    argv = list(serve[serve.index("serve"):]) + ["--csv", "x.csv"]
    settings = ServeSettings.from_args(build_parser({}).parse_args(argv), {})
    assert settings.server.labels == LabelSchedule(delay_rows=500, drop=0.05, seed=1)
