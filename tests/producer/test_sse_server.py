"""The SSE server over real HTTP (uvicorn in a thread), read with raw bytes and with httpx-sse."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from producer_testkit import ThreadServer, read_events, serve_file, write_csv

from kappaml.dataset import GLOBAL_KEY, Dataset, Feature
from kappaml.provenance import stream_name
from kappaml.records import extract
from producer import sse

DS = Dataset(name="toy", features=(Feature("a"), Feature("flag", "boolean"), Feature("color", "categorical")),
             target="y")
HEADER = "a,flag,color,y"


def rows(n: int) -> list[str]:
    return [f"{i}.5,{'True' if i % 2 else 'False'},c{i % 3},{i * 10}" for i in range(1, n + 1)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sse")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[ThreadServer]:
    """100 valid rows, shared by the read-only tests of this module."""
    path = write_csv(data_dir / "toy.csv", HEADER, rows(100))
    with serve_file(path, DS, heartbeat=0.2, max_clients=40) as s:
        yield s


def raw_stream(url: str, **kw) -> bytes:
    with httpx.stream("GET", url, timeout=30, **kw) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        return response.read()


# ---------------------------------------------------------------------------- framing


def test_raw_bytes_follow_the_event_stream_format(server: ThreadServer) -> None:
    body = raw_stream(server.url, params={"start": "98"})
    blocks = body.split(b"\n\n")
    assert blocks[-1] == b""  # every block, the last one too, ends with an empty line
    assert blocks[0] == b"retry: 3000"
    for number, block in zip((98, 99, 100), blocks[1:4], strict=True):
        lines = block.split(b"\n")
        assert lines[0] == f"id: {number}".encode()
        assert lines[1] == b"event: record"
        assert len(lines) == 3 and lines[2].startswith(b"data: {")
        assert json.loads(lines[2][len(b"data: "):])["id"] == number
    assert blocks[4] == b'event: end\ndata: {"last_id":100,"rows":100}'
    assert len(blocks) == 6
    assert b"\r" not in body


def test_sse_module_framing() -> None:
    assert sse.encode_event("x", event="record", id=7) == b"id: 7\nevent: record\ndata: x\n\n"
    assert sse.encode_event("a\nb\r\nc") == b"data: a\ndata: b\ndata: c\n\n"
    assert sse.comment("hi") == b": hi\n\n" and sse.comment() == b":\n\n"
    assert sse.retry(1500) == b"retry: 1500\n\n"
    for bad in ("1\n2", "1\r", "a\0"):
        with pytest.raises(ValueError):
            sse.encode_event("x", id=bad)
    with pytest.raises(ValueError):
        sse.retry(-1)


def test_records_parsed_by_httpx_sse_follow_the_raw_topic_contract(server: ThreadServer) -> None:
    events = read_events(server.url)
    assert [e.event for e in events] == ["record"] * 100 + ["end"]
    assert [e.id for e in events[:100]] == [str(i) for i in range(1, 101)]
    before = int(time.time() * 1000)
    for i, event in enumerate(events[:100], start=1):
        record = json.loads(event.data)
        assert set(record) == {"id", "key", "ts", "source", "stream", "row"}
        assert record["id"] == i and record["key"] == GLOBAL_KEY and record["source"] == "toy"
        # Row ids are unique within a stream: the data set and the digest of the file's bytes.
        assert record["stream"] == stream_name("toy", server.app.state.table.path)
        assert isinstance(record["ts"], int) and before - 600_000 < record["ts"] <= before + 1
        assert record["row"] == {"a": i + 0.5, "flag": bool(i % 2), "color": f"c{i % 3}", "y": float(i * 10)}
        example = extract(DS, record)
        assert example.id == i and example.y == i * 10 and example.stream == record["stream"]
    assert json.loads(events[-1].data) == {"last_id": 100, "rows": 100}


# ---------------------------------------------------------------------------- resume, start, loop


def test_resume_with_last_event_id_continues_exactly_after_it(server: ThreadServer) -> None:
    first = read_events(server.url, limit=37)
    assert first[-1].id == "37"
    rest = read_events(server.url, headers={"Last-Event-ID": first[-1].id})
    ids = [e.id for e in first + rest if e.event == "record"]
    assert ids == [str(i) for i in range(1, 101)]
    # Last-Event-ID wins over start: a reconnecting EventSource repeats its original URL.
    again = read_events(server.url, headers={"Last-Event-ID": "90"}, params={"start": "5"})
    assert [e.id for e in again[:-1]] == [str(i) for i in range(91, 101)]
    # Resuming after the last row only says the stream is over.
    assert [e.event for e in read_events(server.url, headers={"Last-Event-ID": "100"})] == ["end"]
    assert [e.event for e in read_events(server.url, headers={"Last-Event-ID": "0"})][:1] == ["record"]


def test_start_picks_the_first_row(server: ThreadServer) -> None:
    events = read_events(server.url, params={"start": "60"})
    assert [e.id for e in events if e.event == "record"] == [str(i) for i in range(60, 101)]
    assert [e.event for e in read_events(server.url, params={"start": "101"})] == ["end"]
    assert [e.event for e in read_events(server.url, params={"start": "5000"})] == ["end"]


def test_loop_keeps_ids_increasing_across_passes(server: ThreadServer) -> None:
    events = read_events(server.url, params={"loop": "true", "start": "95"}, limit=110)
    assert all(e.event == "record" for e in events)
    ids = [int(e.id) for e in events]
    assert ids == list(range(95, 205))
    for event in events:
        record = json.loads(event.data)
        assert record["id"] == int(event.id)  # the dedup id is unique across passes
        row_number = (int(event.id) - 1) % 100 + 1  # id = pass * n_rows + row number
        assert record["row"]["y"] == row_number * 10
    resumed = read_events(server.url, params={"loop": "true"}, headers={"Last-Event-ID": "250"}, limit=3)
    assert [e.id for e in resumed] == ["251", "252", "253"]
    assert json.loads(resumed[0].data)["row"]["y"] == 510.0


# ---------------------------------------------------------------------------- pacing, heartbeats


def test_rate_paces_rows_and_keeps_order(server: ThreadServer) -> None:
    started = time.monotonic()
    events = read_events(server.url, params={"rate": "40", "start": "81"})
    elapsed = time.monotonic() - started
    assert [e.id for e in events[:-1]] == [str(i) for i in range(81, 101)]
    assert events[-1].event == "end"
    # 20 rows at 40 rows/s cannot arrive faster than ~0.475 s; only a loose lower bound is asserted.
    assert elapsed >= 0.3


def test_idle_streams_get_comment_heartbeats(server: ThreadServer) -> None:
    # 2 rows/s with a 0.2 s heartbeat: comments fill the gaps; clients ignore them.
    body = raw_stream(server.url, params={"rate": "2", "start": "99"})
    assert b"\n: keep-alive\n\n" in body or body.count(b": keep-alive\n\n") >= 1
    events = [b for b in body.split(b"\n\n") if b.startswith(b"id: ")]
    assert [b.split(b"\n")[0] for b in events] == [b"id: 99", b"id: 100"]


# ---------------------------------------------------------------------------- many clients, going away


def test_twenty_clients_at_once_each_get_every_row_in_order(server: ThreadServer) -> None:
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            events = read_events(server.url, params={"rate": "400"})
            results[n] = [e.id for e in events if e.event == "record"]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    # While they stream, the server still answers other requests.
    assert httpx.get(f"{server.base}/health", timeout=10).status_code == 200
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 20
    assert all(ids == [str(i) for i in range(1, 101)] for ids in results.values())


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_work_stops_for_clients_that_went_away(server: ThreadServer) -> None:
    assert wait_for(lambda: server.streams.active == 0)
    with httpx.Client(timeout=10) as client, connect_sse(client, "GET", server.url,
                                                          params={"loop": "true", "rate": "50"}) as source:
        got = []
        events = source.iter_sse()  # held: a dropped httpx-sse iterator closes the connection
        for event in events:
            if event.event == "record":
                got.append(event.id)
            if len(got) == 3:
                break
        assert server.streams.active == 1
    # The client closed its connection: the server notices and releases the stream.
    assert wait_for(lambda: server.streams.active == 0)
    health = httpx.get(f"{server.base}/health", timeout=10).json()
    assert health["active_streams"] == 0


def test_client_limit_gives_503_then_recovers(data_dir: Path) -> None:
    path = write_csv(data_dir / "limit.csv", HEADER, rows(5))
    with serve_file(path, DS, max_clients=2) as s, httpx.Client(timeout=10) as client:
        with connect_sse(client, "GET", s.url, params={"loop": "true", "rate": "5"}) as one, \
                connect_sse(client, "GET", s.url, params={"loop": "true", "rate": "5"}) as two:
            # Keep the iterators: a dropped httpx-sse iterator closes its connection.
            first, second = one.iter_sse(), two.iter_sse()
            next(first)
            next(second)
            assert wait_for(lambda: s.streams.active == 2)
            refused = client.get(s.url)
            assert refused.status_code == 503
            assert "too many clients" in refused.json()["detail"]
            assert refused.headers["retry-after"] == "1"
        assert wait_for(lambda: s.streams.active == 0)
        assert [e.event for e in read_events(s.url)][-1] == "end"


def test_stopping_the_server_ends_open_streams(data_dir: Path) -> None:
    path = write_csv(data_dir / "stop.csv", HEADER, rows(5))
    s = serve_file(path, DS)
    with s:
        box: list = []
        errors: list[BaseException] = []

        def follow() -> None:
            try:
                with httpx.Client(timeout=10) as client, connect_sse(
                    client, "GET", s.url, params={"loop": "true", "rate": "20"}
                ) as source:
                    for event in source.iter_sse():
                        if event.data:  # not the retry-only block
                            box.append(event)
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=follow)
        t.start()
        assert wait_for(lambda: len(box) >= 2)
        s.streams.stop.set()
        t.join(10)
        assert not t.is_alive()
    # The stream ended cleanly, without `end`: a stop is not the end of the data; a client
    # reconnects with Last-Event-ID.
    assert errors == []
    assert [e.event for e in box] == ["record"] * len(box)


# ---------------------------------------------------------------------------- bad requests, other routes


@pytest.mark.parametrize(
    ("params", "headers", "needle"),
    [
        ({"rate": "-1"}, {}, "rate"),
        ({"rate": "abc"}, {}, "rate"),
        ({"rate": "1e12"}, {}, "rate"),
        ({"rate": "nan"}, {}, "rate"),
        ({"loop": "maybe"}, {}, "loop"),
        ({"start": "0"}, {}, "start"),
        ({"start": "x"}, {}, "start"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "-3"}, "Last-Event-ID"),
    ],
)
def test_bad_query_values_get_400_with_a_clear_message(server: ThreadServer, params, headers, needle) -> None:
    response = httpx.get(server.url, params=params, headers=headers, timeout=10)
    assert response.status_code == 400
    assert needle in response.text


def test_health_dataset_and_openapi(server: ThreadServer) -> None:
    health = httpx.get(f"{server.base}/health", timeout=10).json()
    assert health["status"] == "ok" and health["dataset"] == "toy" and health["synthetic"] is False
    declaration = httpx.get(f"{server.base}/dataset", timeout=10).json()
    assert Dataset.from_dict(declaration) == DS
    schema = httpx.get(f"{server.base}/schema/openapi.json", timeout=10).json()
    assert {"/events", "/health", "/dataset"} <= set(schema["paths"])
    names = {p["name"] for p in schema["paths"]["/events"]["get"]["parameters"]}
    assert {"rate", "loop", "start", "Last-Event-ID"} <= names


@pytest.mark.parametrize("path", ["/events/../../etc/passwd", "/etc/passwd", "/events/x", "/toy.csv"])
def test_no_path_reaches_the_filesystem(server: ThreadServer, path: str) -> None:
    response = httpx.get(server.base + path, timeout=10)
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_only_get_is_served(server: ThreadServer) -> None:
    response = httpx.post(server.url, content=b"x" * 100_000, timeout=10)
    assert response.status_code == 405
    assert httpx.get(f"{server.base}/health", timeout=10).status_code == 200


def test_key_and_id_column_in_records_and_across_loop_passes(data_dir: Path) -> None:
    ds = Dataset(name="shops", features=(Feature("price"),), target="sales", key="shop", id_column="uid")
    path = write_csv(data_dir / "shops.csv", "uid,shop,price,sales", ["u1,north,1,10", "u2,south,2,20"])
    with serve_file(path, ds) as s:
        events = read_events(s.url, params={"loop": "true"}, limit=5)
    records = [json.loads(e.data) for e in events]
    assert [e.id for e in events] == ["1", "2", "3", "4", "5"]  # positions, for Last-Event-ID
    # The record id is the id column's value; from the second pass on it is marked with the pass,
    # so a looped row is a new example, not a duplicate to drop.
    assert [r["id"] for r in records] == ["u1", "u2", "u1#1", "u2#1", "u1#2"]
    assert [r["key"] for r in records] == ["north", "south", "north", "south", "north"]
    assert all(extract(ds, r).key == r["row"]["shop"] for r in records)
